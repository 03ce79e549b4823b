"""Restoring a board from PostgreSQL, the system of record, plus the stream's tail.

What a board should hold comes from one PostgreSQL snapshot and the stream read after
it: each player's total as PostgreSQL persisted it (the sum of the increases it
stored), plus every applied update still in the stream that the snapshot does not
hold. While a rebuild runs (its lock held) the syncer trims nothing, so an update
persisted after the snapshot is still in the stream when it is read, and one
persisted before it is in the snapshot: each is counted once. The board is staged
under side keys and swapped in by one script, which adds the updates applied since
the stream was read and announces the new build, so readers never see an empty board.

A board whose state is missing refuses updates until this has run; the server and the
syncer both run it by themselves (`scoreboard.boards.guard`). `scoreboard.boards.reconcile`
computes the same and compares it with the live board first, to report and repair
what differs.

Updates the syncer gave up on (its dead letters) were applied and acknowledged: they
count here as updates PostgreSQL does not hold, so no rebuild takes them back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import hiredis
from redis.asyncio.connection import AbstractConnection, ConnectionPool

from scoreboard.core.errors import NOT_APPLIED, ServiceUnavailable
from scoreboard.core.periods import period_at
from scoreboard.core.settings import Settings
from scoreboard.core.turns import in_slices
from scoreboard.core.values import banned_entry, player_entry, tie, tie_member
from scoreboard.storage.database import db_errors
from scoreboard.storage.keys import DEFAULT_BOARD, BoardKeys
from scoreboard.storage.redis_client import RedisClient, as_text, redis_errors
from scoreboard.storage.scripts import Scripts
from scoreboard.storage.scripts.rebuild import Hold, hold_key

log = logging.getLogger("scoreboard.rebuild")

# entries per Redis call while reading or staging a board: a chunk costs Redis a
# millisecond or two, so a board of any size never stalls it (a 2-core box measured)
CHUNK = 500
COMMANDS_A_ROUND = 16  # a staging round: eight chunks, a ZADD and an HSET each
# staging rounds sent before the replies of the first are read: the next round is
# built and encoded here while Redis applies the one before, instead of each waiting
# for the other (a million players: 8.8 s of staging, python and Redis in turn)
ROUNDS_IN_FLIGHT = 3
LOCK_MS = 120_000
_UUID_RE = re.compile(r"\A[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")

# a board's standings (its banned players too: a ban holds on every board)
_BOARD_PLAYERS_SQL = """
SELECT u.id::text AS user_id, u.username, coalesce(b.score, 0) AS score,
       coalesce(b.last_event_seq, 0) AS seq,
       (extract(epoch FROM coalesce(b.updated_at, u.updated_at)) * 1000)::bigint AS updated_ms,
       u.banned
FROM users u LEFT JOIN board_scores b ON b.user_id = u.id AND b.board = $1
WHERE b.score > 0 OR u.banned
ORDER BY 3
"""
_BOARD_PERIODS_SQL = "SELECT periods FROM boards WHERE name = $1"
# a current period's standings (a banned player's is kept aside for an unban)
_PERIOD_PLAYERS_SQL = """
SELECT p.user_id::text AS user_id, u.username, p.score, p.last_event_seq AS seq,
       (extract(epoch FROM p.updated_at) * 1000)::bigint AS updated_ms
FROM period_scores p JOIN users u ON u.id = p.user_id
WHERE p.board = $1 AND p.period_id = $2 AND p.score > 0
ORDER BY p.score
"""
_PERSISTED_SQL = "SELECT id::text FROM scores WHERE id = ANY($1::uuid[])"
_BOARD_MAX_SEQ_SQL = "SELECT coalesce(max(last_event_seq), 0) FROM board_scores WHERE board = $1"


@dataclass(frozen=True)
class PeriodClock:
    """How a rebuild names the current periods: Redis TIME plus `offset_ms` (0 but in
    tests, which move a process's clock to a period's end); a staged period ranking
    expires `grace_ms` after its period ends."""

    offset_ms: int = 0
    grace_ms: int = 3_600_000

    @classmethod
    def from_settings(cls, settings: Settings, offset_ms: int = 0) -> PeriodClock:
        return cls(offset_ms, settings.period_grace_seconds * 1000)


REAL_CLOCK = PeriodClock()


@dataclass(frozen=True)
class CurrentPeriod:
    period_id: str
    keep_ms: int  # how long its keys stay from now


@dataclass(slots=True)
class Standing:
    username: str
    score: int
    seq: int
    updated_ms: int
    banned: bool = False


@dataclass(frozen=True)
class TailUpdate:
    """An applied update still in the stream."""

    event_id: str
    user_id: str
    username: str
    delta: int
    seq: int
    ts_ms: int
    periods: tuple[str, ...] = ()


@dataclass
class Expected:
    """What the board should hold, as of stream id `last_id`: the all-time standings
    and those of each current period (a banned player's standings in them kept aside
    for an unban, as in the all-time ones)."""

    standings: dict[str, Standing]
    last_id: str
    from_stream: int
    periods: dict[CurrentPeriod, dict[str, Standing]] = field(default_factory=dict)

    @property
    def max_seq(self) -> int:
        return max((s.seq for s in self.standings.values()), default=0)


@dataclass(frozen=True)
class RebuildReport:
    players: int
    from_stream: int
    caught_up: int


def _tail_update(raw: dict[Any, Any] | None) -> TailUpdate | None:
    fields = {as_text(k): as_text(v) for k, v in (raw or {}).items()}
    if fields.get("type") != "score_updated" or not _UUID_RE.match(fields.get("event_id", "")):
        return None
    try:
        return TailUpdate(
            fields["event_id"],
            fields["user_id"],
            fields["username"],
            int(fields["delta"]),
            int(fields["seq"]),
            int(fields["ts"]),
            tuple(pid for pid in fields.get("periods", "").split(",") if pid),
        )
    except (KeyError, ValueError):
        return None  # malformed: the syncer sends it to the dead letters


def _parse_tail(entries: list[Any]) -> tuple[list[TailUpdate], str]:
    updates, last_id = [], "0-0"
    for stream_id, raw in entries:
        last_id = as_text(stream_id)
        update = _tail_update(raw)
        if update is not None:
            updates.append(update)
    return updates, last_id


async def _read_tail(
    redis: RedisClient, events_key: str, after: str = "0-0"
) -> tuple[list[TailUpdate], str]:
    """The applied updates of a stream after the id `after`, read in chunks, and the
    last id read (`after` when there was nothing more)."""
    updates: list[TailUpdate] = []
    last_id = after
    while True:
        async with redis_errors():
            entries = await redis.xrange(events_key, min=f"({last_id}", max="+", count=CHUNK)
        chunk, chunk_last = _parse_tail(entries or [])
        updates += chunk
        if entries:
            last_id = chunk_last
        if len(entries or []) < CHUNK:
            return updates, last_id


def _add_unpersisted(
    standings: dict[str, Standing],
    updates: list[TailUpdate],
    period_id: str | None = None,
    *,
    shared: bool = False,
) -> int:
    """Add updates PostgreSQL does not hold (with `period_id`, only those that
    counted in that period). With `shared`, the standings are another's: a standing
    is copied before its first change, and only those (a million-player board is not
    copied whole for the few players the stream changes)."""
    added = 0
    copied: set[str] = set()
    for update in updates:
        if period_id is not None and period_id not in update.periods:
            continue
        known = standings.get(update.user_id)
        if known is None:
            known = standings[update.user_id] = Standing(update.username, 0, 0, 0)
            copied.add(update.user_id)
        elif shared and update.user_id not in copied:
            known = standings[update.user_id] = dataclasses.replace(known)
            copied.add(update.user_id)
        known.score += update.delta
        if update.seq > known.seq:
            known.seq, known.username, known.updated_ms = update.seq, update.username, update.ts_ms
        added += 1
    return added


async def _current_periods(
    redis: RedisClient, conn: asyncpg.Connection, board: BoardKeys, clock: PeriodClock
) -> list[CurrentPeriod]:
    kinds = await conn.fetchval(_BOARD_PERIODS_SQL, board.name) or []
    if not kinds:
        return []
    async with redis_errors():
        seconds, micros = await redis.time()
    now_ms = seconds * 1000 + micros // 1000 + clock.offset_ms
    current = []
    for kind in kinds:
        period = period_at(kind, now_ms)
        current.append(CurrentPeriod(period.id, period.ends_ms + clock.grace_ms - now_ms))
    return current


@dataclass
class Baseline:
    """One PostgreSQL snapshot of a board and the applied updates it does not hold:
    those still in the stream (read up to `last_id`, and further by `extend`) and
    those the syncer gave up on (the dead letters: the board holds them, so a rebuild
    keeps them too). What the board should hold follows from it at any update
    sequence read after the snapshot."""

    persisted: dict[str, Standing]
    period_rows: dict[CurrentPeriod, list[asyncpg.Record]]
    unpersisted: list[TailUpdate]
    last_id: str
    dead_letters: int = 0  # applied updates held only in the dead letters
    by_user: dict[str, list[TailUpdate]] = field(default_factory=dict)
    _periods: dict[str, dict[str, int]] = field(default_factory=dict)  # scores by period

    def __post_init__(self) -> None:
        for update in self.unpersisted:
            self.by_user.setdefault(update.user_id, []).append(update)

    async def extend(self, redis: RedisClient, board: BoardKeys) -> None:
        """Read the updates applied since `last_id` (none of them can be in the
        snapshot, which is older than they are)."""
        updates, self.last_id = await _read_tail(redis, board.events, self.last_id)
        self.unpersisted += updates
        for update in updates:
            self.by_user.setdefault(update.user_id, []).append(update)

    def _period_scores(self, period_id: str) -> dict[str, int]:
        found = self._periods.get(period_id)
        if found is None:
            rows = next(r for p, r in self.period_rows.items() if p.period_id == period_id)
            found = self._periods[period_id] = {row["user_id"]: row["score"] for row in rows}
        return found

    def standing_at(self, user_id: str, seq: int, period_id: str | None = None) -> tuple[int, bool]:
        """The score the all-time ranking (or with `period_id`, that current period's)
        should hold of the player once the updates up to `seq` are applied, and whether
        the player is banned."""
        known = self.persisted.get(user_id)
        if period_id is None:
            score = known.score if known else 0
        else:
            score = self._period_scores(period_id).get(user_id, 0)
        for update in self.by_user.get(user_id, ()):
            if update.seq <= seq and (period_id is None or period_id in update.periods):
                score += update.delta
        return score, bool(known and known.banned)

    def users(self, period_id: str | None = None) -> Iterator[str]:
        """The players the ranking may hold (the all-time one, or a current period's),
        each once, one at a time (a million players' set is never built at once)."""
        known = self.persisted if period_id is None else self._period_scores(period_id)
        yield from known
        for user_id, updates in self.by_user.items():
            if user_id not in known and (
                period_id is None or any(period_id in update.periods for update in updates)
            ):
                yield user_id

    async def expected(self) -> Expected:
        """The board and its current periods with every update read so far (worked
        out in slices: a rebuild runs in the server's process too)."""
        standings = dict(self.persisted)
        added = _add_unpersisted(standings, self.unpersisted, shared=True)
        kept: dict[str, Standing] = {}
        banned: set[str] = set()
        async for chunk in in_slices(standings.items()):
            for user_id, standing in chunk:
                if standing.banned:
                    banned.add(user_id)
                    kept[user_id] = standing
                elif standing.score > 0:
                    kept[user_id] = standing
        periods = {}
        for period, found in self.period_rows.items():
            ranked: dict[str, Standing] = {}
            async for rows in in_slices(found):
                ranked.update(
                    (
                        row["user_id"],
                        Standing(row["username"], row["score"], row["seq"], row["updated_ms"]),
                    )
                    for row in rows
                )
            _add_unpersisted(ranked, self.unpersisted, period.period_id)
            for user_id in banned:
                if user_id in ranked:
                    ranked[user_id].banned = True  # kept aside for an unban, not ranked
            scored: dict[str, Standing] = {}
            async for entries in in_slices(ranked.items()):
                scored.update((u, s) for u, s in entries if s.score > 0)
            periods[period] = scored
        return Expected(kept, self.last_id, added, periods)


async def read_baseline(
    redis: RedisClient,
    pool: asyncpg.Pool,
    board: BoardKeys,
    clock: PeriodClock = REAL_CLOCK,
) -> Baseline:
    """PostgreSQL's totals of the board, of its current periods, and the applied
    updates of the stream and of the dead letters that PostgreSQL does not hold."""
    async with (
        db_errors(),
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        # the snapshot starts here
        rows = await conn.fetch(_BOARD_PLAYERS_SQL, board.name)
        current = await _current_periods(redis, conn, board, clock)
        period_rows = {
            period: await conn.fetch(_PERIOD_PLAYERS_SQL, board.name, period.period_id)
            for period in current
        }
        updates, last_id = await _read_tail(redis, board.events)
        dead, _ = await _read_tail(redis, board.keys.dead_letters(board.name))
        ids = list({update.event_id for update in updates + dead})
        persisted = {row[0] for row in await conn.fetch(_PERSISTED_SQL, ids)} if ids else set()
    in_stream = {update.event_id for update in updates}
    held_dead = [u for u in dead if u.event_id not in persisted and u.event_id not in in_stream]
    # by position (user_id, username, score, seq, updated_ms, banned): a million rows
    # read by name cost a second more; in slices, so the event loop runs meanwhile
    standings: dict[str, Standing] = {}
    async for chunk in in_slices(rows):
        standings.update(
            (row[0], Standing(row[1], row[2], row[3], row[4], row[5])) for row in chunk
        )
    unpersisted = [u for u in updates if u.event_id not in persisted] + held_dead
    return Baseline(standings, period_rows, unpersisted, last_id, len(held_dead))


async def expected_board(
    redis: RedisClient,
    pool: asyncpg.Pool,
    board: BoardKeys,
    clock: PeriodClock = REAL_CLOCK,
) -> Expected:
    """PostgreSQL's totals plus the applied updates it does not hold yet, for the
    all-time ranking and each current period."""
    baseline = await read_baseline(redis, pool, board, clock)
    return await baseline.expected()


def _staging_commands(
    staged: tuple[str, str, str], standings: dict[str, Standing]
) -> Iterator[tuple[str | bytes, ...]]:
    """The ZADDs and HSETs that stage `standings`, a chunk of players each: the command
    and its key as text (a cluster client routes by them), every other argument bytes
    already."""
    staged_board, staged_players, staged_banned = staged
    items = list(standings.items())
    for offset in range(0, len(items), CHUNK):
        ranking: list[bytes] = []
        entries: list[bytes] = []
        banned: list[bytes] = []
        for uid, s in items[offset : offset + CHUNK]:
            tie_text = tie(s.seq)
            if s.banned:
                entry = banned_entry(tie_text, s.updated_ms, s.username, s.score)
                banned += (uid.encode(), entry.encode())
            else:
                ranking += (b"%d" % s.score, tie_member(tie_text, uid).encode())
                entries += (uid.encode(), player_entry(tie_text, s.updated_ms, s.username).encode())
        if ranking:
            yield ("ZADD", staged_board, *ranking)
            yield ("HSET", staged_players, *entries)
        if banned:
            yield ("HSET", staged_banned, *banned)


async def _stage(
    redis: RedisClient, staged: tuple[str, str, str], standings: dict[str, Standing]
) -> None:
    """Ranked players onto a staged ranking and players hash; banned ones, with their
    standing kept, into the staged banned hash (the all-time ranking's, or a period's)."""
    async with redis_errors():
        await redis.unlink(*staged)
        commands = _staging_commands(staged, standings)
        if isinstance(getattr(redis, "connection_pool", None), ConnectionPool):
            await _send_packed(redis.connection_pool, commands)
        else:
            await _send_pipelined(redis, commands)


async def _send_packed(pool: ConnectionPool, commands: Iterator[tuple[str | bytes, ...]]) -> None:
    """One Redis (not a cluster): the commands packed by hiredis in one call each and
    written on one connection a round at a time, the replies of `ROUNDS_IN_FLIGHT`
    rounds read behind them. redis-py's pipeline looks at every argument in Python
    to pack it, four million of them for a million players: most of a rebuild's
    staging CPU (measured)."""
    conn: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
    unread: collections.deque[int] = collections.deque()
    done = False
    try:
        round_: list[bytes] = []
        for command in commands:
            round_.append(hiredis.pack_command(command))  # type: ignore[arg-type]  # its stub: 1-tuples
            if len(round_) == COMMANDS_A_ROUND:
                await conn.send_packed_command(round_, check_health=False)
                unread.append(len(round_))
                round_ = []
                if len(unread) >= ROUNDS_IN_FLIGHT:
                    await _replies(conn, unread.popleft())
        if round_:
            await conn.send_packed_command(round_, check_health=False)
            unread.append(len(round_))
        while unread:
            await _replies(conn, unread.popleft())
        done = True
    finally:
        if not done:  # replies left unread: the connection cannot be used again
            await conn.disconnect()
        await pool.release(conn)


async def _replies(conn: AbstractConnection, count: int) -> None:
    for _ in range(count):
        await conn.read_response()  # raises the error of a refused command


async def _send_pipelined(redis: RedisClient, commands: Iterator[tuple[str | bytes, ...]]) -> None:
    """A cluster: through the client's pipelines, which route each command to the node
    holding the board, `ROUNDS_IN_FLIGHT` rounds sent at once."""
    in_flight: list[asyncio.Future[Any]] = []
    try:
        pipe = redis.pipeline(transaction=False)
        for number, command in enumerate(commands, 1):
            pipe.execute_command(*command)
            if number % COMMANDS_A_ROUND == 0:  # a few chunks a round, each small
                in_flight.append(asyncio.ensure_future(pipe.execute()))
                pipe = redis.pipeline(transaction=False)
                if len(in_flight) >= ROUNDS_IN_FLIGHT:
                    await in_flight.pop(0)
        in_flight.append(asyncio.ensure_future(pipe.execute()))
        while in_flight:
            await in_flight.pop(0)
    finally:
        # a round failed: the ones sent with it are stopped before the error goes up
        for round_left in in_flight:
            round_left.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)


async def _stage_periods(
    redis: RedisClient, board: BoardKeys, periods: dict[CurrentPeriod, dict[str, Standing]]
) -> None:
    """Each current period's ranking and its banned players' standings, staged for
    the install script, expiring with the period."""
    for period, standings in periods.items():
        staged = board.period_staging(period.period_id)
        await _stage(redis, staged, standings)
        async with redis_errors():
            for key in staged:
                await redis.pexpire(key, max(1, period.keep_ms))


async def install(
    redis: RedisClient, scripts: Scripts, board: BoardKeys, expected: Expected
) -> RebuildReport:
    """Stage `expected` and swap it in as a new build of the board."""
    await _stage(redis, board.rebuild_staging, expected.standings)
    await _stage_periods(redis, board, expected.periods)
    caught_up, _ = await scripts.install_board(
        board,
        expected.max_seq,
        expected.last_id,
        secrets.token_hex(8),
        [(period.period_id, period.keep_ms) for period in expected.periods],
    )
    ranked = sum(not standing.banned for standing in expected.standings.values())
    report = RebuildReport(ranked, expected.from_stream, caught_up)
    log.info("board %s rebuilt: %s", board.name, report)
    return report


async def rebuild_board(
    redis: RedisClient,
    pool: asyncpg.Pool,
    scripts: Scripts,
    board: BoardKeys,
    clock: PeriodClock = REAL_CLOCK,
) -> RebuildReport:
    """Rebuild now; the caller holds the board's rebuild lock."""
    expected = await expected_board(redis, pool, board, clock=clock)
    return await install(redis, scripts, board, expected)


@asynccontextmanager
async def rebuild_lock(redis: RedisClient, board: BoardKeys) -> AsyncIterator[bool]:
    """Yields whether this process holds the board's rebuild lock."""
    async with _held(redis, board, "rebuild") as held:
        yield held


@asynccontextmanager
async def trim_hold(redis: RedisClient, board: BoardKeys) -> AsyncIterator[bool]:
    """Yields whether this process holds the board's trim hold: while it does, the
    syncer trims nothing from the stream, yet bans, updates and rebuilds go on."""
    async with _held(redis, board, "trim") as held:
        yield held


@asynccontextmanager
async def _held(redis: RedisClient, board: BoardKeys, hold: Hold) -> AsyncIterator[bool]:
    """Take the hold for LOCK_MS and keep extending it while the body runs (a rebuild or
    a compare may outlast it); let go of it after, only if it is still ours."""
    key = hold_key(board, hold)
    owner = secrets.token_hex(8)
    async with redis_errors():
        held = bool(await redis.set(key, owner, nx=True, px=LOCK_MS))
    if not held:
        yield False
        return
    scripts = Scripts(redis)

    async def keep() -> None:
        while True:
            await asyncio.sleep(LOCK_MS / 3000)
            with contextlib.suppress(ServiceUnavailable):
                if not await scripts.keep_hold(board, hold, owner, LOCK_MS):
                    log.warning("board %s: the %s hold was lost", board.name, hold)
                    return

    keeping = asyncio.create_task(keep())
    try:
        yield True
    finally:
        keeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeping
        # an unreachable Redis lets the hold expire by itself
        with contextlib.suppress(ServiceUnavailable):
            await scripts.release_hold(board, hold, owner)


async def rebuild_with_lock(
    redis: RedisClient,
    pool: asyncpg.Pool,
    scripts: Scripts,
    board: BoardKeys,
    clock: PeriodClock = REAL_CLOCK,
) -> RebuildReport:
    """An operator's rebuild: refused while another process is rebuilding."""
    async with rebuild_lock(redis, board) as held:
        if not held:
            raise ServiceUnavailable(
                "Another process is rebuilding this board", outcome=NOT_APPLIED
            )
        return await rebuild_board(redis, pool, scripts, board, clock)


async def ensure_board(
    redis: RedisClient,
    pool: asyncpg.Pool,
    scripts: Scripts,
    board: BoardKeys,
    clock: PeriodClock = REAL_CLOCK,
) -> str:
    """Make the board ready for updates, rebuilding it first when Redis lost it.
    Returns 'ready', 'created', 'rebuilt', or 'busy' while another process rebuilds
    it (the caller looks again later). Only one process rebuilds at a time."""
    async with redis_errors():
        if await redis.exists(board.state):
            return "ready"
    async with rebuild_lock(redis, board) as held:
        if not held:
            return "busy"
        async with redis_errors():
            if await redis.exists(board.state):
                return "ready"  # another process finished while we took the lock
        report = await rebuild_board(redis, pool, scripts, board, clock)
    return "rebuilt" if report.players or report.from_stream else "created"


async def persisted_max_seq(pool: asyncpg.Pool, board: str = DEFAULT_BOARD) -> int:
    """The highest update sequence PostgreSQL holds of the board (its high-water mark)."""
    async with db_errors():
        value = await pool.fetchval(_BOARD_MAX_SEQ_SQL, board)
    return int(value or 0)
