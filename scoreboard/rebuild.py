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
syncer both run it by themselves (`scoreboard.board_guard`). `reconcile` computes the
same and compares it with the live board first, to report and repair what differs.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from scoreboard.board_values import banned_entry, member, member_user, parse_banned, player_entry
from scoreboard.database import db_errors
from scoreboard.errors import ServiceUnavailable
from scoreboard.keys import DEFAULT_BOARD, BoardKeys
from scoreboard.periods import period_at
from scoreboard.redis_store import RedisClient, as_text, redis_errors
from scoreboard.scripts import Scripts
from scoreboard.settings import Settings

log = logging.getLogger("scoreboard.rebuild")

CHUNK = 5000
LOCK_MS = 120_000
RECONCILE_MAX_TAIL = 50_000
_UUID_RE = re.compile(r"\A[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")

_PLAYERS_SQL = """
SELECT id::text AS user_id, username, current_score AS score, last_event_seq AS seq,
       (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms, banned
FROM users WHERE current_score > 0 OR banned
"""
# another board's standings (its banned players too: a ban holds on every board)
_BOARD_PLAYERS_SQL = """
SELECT u.id::text AS user_id, u.username, coalesce(b.score, 0) AS score,
       coalesce(b.last_event_seq, 0) AS seq,
       (extract(epoch FROM coalesce(b.updated_at, u.updated_at)) * 1000)::bigint AS updated_ms,
       u.banned
FROM users u LEFT JOIN board_scores b ON b.user_id = u.id AND b.board = $1
WHERE b.score > 0 OR u.banned
"""
_BOARD_PERIODS_SQL = "SELECT periods FROM boards WHERE name = $1"
# a current period's standings (banned players stay out of period rankings)
_PERIOD_PLAYERS_SQL = """
SELECT p.user_id::text AS user_id, u.username, p.score, p.last_event_seq AS seq,
       (extract(epoch FROM p.updated_at) * 1000)::bigint AS updated_ms
FROM period_scores p JOIN users u ON u.id = p.user_id
WHERE p.board = $1 AND p.period_id = $2 AND p.score > 0 AND NOT u.banned
"""
_PERSISTED_SQL = "SELECT id::text FROM scores WHERE id = ANY($1::uuid[])"
_MAX_SEQ_SQL = "SELECT coalesce(max(last_event_seq), 0) FROM users"
_BOARD_MAX_SEQ_SQL = "SELECT coalesce(max(last_event_seq), 0) FROM board_scores WHERE board = $1"


@dataclass(frozen=True)
class PeriodClock:
    """How a rebuild names the current periods: Redis TIME plus the test clock's
    offset; a staged period ranking expires `grace_ms` after its period ends."""

    offset_ms: int = 0
    grace_ms: int = 3_600_000

    @classmethod
    def from_settings(cls, settings: Settings) -> PeriodClock:
        return cls(settings.test_clock_offset_ms, settings.period_grace_seconds * 1000)


REAL_CLOCK = PeriodClock()


@dataclass(frozen=True)
class CurrentPeriod:
    period_id: str
    keep_ms: int  # how long its keys stay from now


@dataclass
class Standing:
    username: str
    score: int
    seq: int
    updated_ms: int
    banned: bool = False

    def member(self, user_id: str) -> str:
        return member(self.seq, user_id)


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
    and those of each current period."""

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


@dataclass
class ReconcileReport:
    """How the live board differed from PostgreSQL plus the unsynced stream."""

    players: int = 0
    differences: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    repaired: bool = False
    skipped: str | None = None

    @property
    def clean(self) -> bool:
        return not self.differences

    def note(self, kind: str, user_id: str, live: int | None, expected: int | None) -> None:
        self.differences[kind] = self.differences.get(kind, 0) + 1
        if len(self.examples) < 20:
            self.examples.append((user_id, live, expected))


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


async def _read_tail(redis: RedisClient, events_key: str) -> tuple[list[TailUpdate], str]:
    updates: list[TailUpdate] = []
    last_id, start = "0-0", "-"
    while True:
        async with redis_errors():
            entries = await redis.xrange(events_key, min=start, max="+", count=CHUNK) or []
        chunk, chunk_last = _parse_tail(entries)
        updates += chunk
        if entries:
            last_id = chunk_last
        if len(entries) < CHUNK:
            return updates, last_id
        start = f"({last_id}"


def _add_unpersisted(
    standings: dict[str, Standing],
    updates: list[TailUpdate],
    persisted: set[str],
    period_id: str | None = None,
) -> int:
    """Add the updates PostgreSQL does not hold yet (with `period_id`, only those that
    counted in that period)."""
    added = 0
    for update in updates:
        if update.event_id in persisted:
            continue
        if period_id is not None and period_id not in update.periods:
            continue
        known = standings.get(update.user_id)
        if known is None:
            known = standings[update.user_id] = Standing(update.username, 0, 0, 0)
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


async def expected_board(
    redis: RedisClient,
    pool: asyncpg.Pool,
    board: BoardKeys,
    live: LiveBoard | None = None,
    clock: PeriodClock = REAL_CLOCK,
) -> Expected:
    """PostgreSQL's totals plus the updates in the stream it does not hold yet, for the
    all-time ranking and each current period. With `live`, the live board is read in
    the same instant as the stream."""
    async with (
        db_errors(),
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        # the snapshot starts here
        if board.name == DEFAULT_BOARD:
            rows = await conn.fetch(_PLAYERS_SQL)
        else:
            rows = await conn.fetch(_BOARD_PLAYERS_SQL, board.name)
        current = await _current_periods(redis, conn, board, clock)
        period_rows = {
            period: await conn.fetch(_PERIOD_PLAYERS_SQL, board.name, period.period_id)
            for period in current
        }
        if live is None:
            updates, last_id = await _read_tail(redis, board.events)
        else:
            updates, last_id = await live.read(board)
        ids = [update.event_id for update in updates]
        persisted = {row[0] for row in await conn.fetch(_PERSISTED_SQL, ids)} if ids else set()
    standings = {
        row["user_id"]: Standing(
            row["username"], row["score"], row["seq"], row["updated_ms"], row["banned"]
        )
        for row in rows
    }
    added = _add_unpersisted(standings, updates, persisted)
    kept = {u: s for u, s in standings.items() if s.score > 0 or s.banned}
    banned = {u for u, s in kept.items() if s.banned}
    periods = {}
    for period, found in period_rows.items():
        ranked = {
            row["user_id"]: Standing(row["username"], row["score"], row["seq"], row["updated_ms"])
            for row in found
        }
        _add_unpersisted(ranked, updates, persisted, period.period_id)
        periods[period] = {u: s for u, s in ranked.items() if s.score > 0 and u not in banned}
    return Expected(kept, last_id, added, periods)


async def _stage(redis: RedisClient, board: BoardKeys, standings: dict[str, Standing]) -> None:
    """Ranked players onto the staged board and players hash; banned ones, with their
    standing kept, into the staged banned hash."""
    staged_board, staged_players, staged_banned = board.rebuild_staging
    items = list(standings.items())
    async with redis_errors():
        await redis.delete(staged_board, staged_players, staged_banned)
        for offset in range(0, len(items), CHUNK):
            chunk = items[offset : offset + CHUNK]
            ranked = [(uid, s) for uid, s in chunk if not s.banned]
            banned = [(uid, s) for uid, s in chunk if s.banned]
            pipe = redis.pipeline(transaction=False)
            if ranked:
                pipe.zadd(staged_board, {s.member(uid): s.score for uid, s in ranked})
                pipe.hset(
                    staged_players,
                    mapping={
                        uid: player_entry(s.member(uid), s.updated_ms, s.username)
                        for uid, s in ranked
                    },
                )
            if banned:
                pipe.hset(
                    staged_banned,
                    mapping={
                        uid: banned_entry(s.member(uid), s.updated_ms, s.username, s.score)
                        for uid, s in banned
                    },
                )
            await pipe.execute()


async def _stage_periods(
    redis: RedisClient, board: BoardKeys, periods: dict[CurrentPeriod, dict[str, Standing]]
) -> None:
    """Each current period's ranking, staged for the install script, expiring with
    its period."""
    async with redis_errors():
        for period, standings in periods.items():
            ranking, players = board.period_staging(period.period_id)
            await redis.delete(ranking, players)
            items = list(standings.items())
            for offset in range(0, len(items), CHUNK):
                chunk = items[offset : offset + CHUNK]
                pipe = redis.pipeline(transaction=False)
                pipe.zadd(ranking, {s.member(uid): s.score for uid, s in chunk})
                pipe.hset(
                    players,
                    mapping={
                        uid: player_entry(s.member(uid), s.updated_ms, s.username)
                        for uid, s in chunk
                    },
                )
                await pipe.execute()
            if items:
                keep_ms = max(1, period.keep_ms)
                await redis.pexpire(ranking, keep_ms)
                await redis.pexpire(players, keep_ms)


async def install(
    redis: RedisClient, scripts: Scripts, board: BoardKeys, expected: Expected
) -> RebuildReport:
    """Stage `expected` and swap it in as a new build of the board."""
    await _stage(redis, board, expected.standings)
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
    owner = secrets.token_hex(8)
    async with redis_errors():
        held = bool(await redis.set(board.rebuild_lock, owner, nx=True, px=LOCK_MS))
    try:
        yield held
    finally:
        if held:
            async with redis_errors():
                if as_text(await redis.get(board.rebuild_lock) or b"") == owner:
                    await redis.delete(board.rebuild_lock)


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
            raise ServiceUnavailable("Another process is rebuilding this board")
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


class LiveBoard:
    """The live board, read in one transaction with the stream it is compared to."""

    def __init__(self, scripts: Scripts) -> None:
        self._scripts = scripts
        self.scores: dict[str, int] = {}
        self.banned: dict[str, int] = {}
        self.seq = 0

    async def read(self, board: BoardKeys) -> tuple[list[TailUpdate], str]:
        snapshot = await self._scripts.snapshot_board(board)
        for member_text, score in snapshot.members:
            self.scores[member_user(member_text)] = score
        for user_id, value in snapshot.banned.items():
            self.banned[user_id] = parse_banned(value).score
        self.seq = snapshot.seq
        return _parse_tail(snapshot.entries)


def _compare_banned(live: LiveBoard, expected: Expected, report: ReconcileReport) -> None:
    for user_id, standing in expected.standings.items():
        if standing.banned != (user_id in live.banned):
            kind = "ban_missing" if standing.banned else "unban_missing"
            report.note(kind, user_id, None, standing.score)
        elif standing.banned and live.banned[user_id] != standing.score:
            report.note("banned_score", user_id, live.banned[user_id], standing.score)
    for user_id, held in live.banned.items():
        if user_id not in expected.standings:
            report.note("unban_missing", user_id, held, None)


def compare(live: LiveBoard, expected: Expected, report: ReconcileReport) -> None:
    report.players = len(expected.standings)
    _compare_banned(live, expected, report)
    for user_id, standing in expected.standings.items():
        held = live.scores.get(user_id)
        if standing.banned:
            if held is not None:
                report.note("banned_on_board", user_id, held, standing.score)
        elif held is None:
            report.note("missing", user_id, None, standing.score)
        elif held < standing.score:
            report.note("behind", user_id, held, standing.score)
        elif held > standing.score:
            report.note("ahead", user_id, held, standing.score)
    for user_id, held in live.scores.items():
        if user_id not in expected.standings:
            report.note("unknown", user_id, held, None)
    if live.seq < expected.max_seq:
        report.note("sequence_behind", "-", live.seq, expected.max_seq)


async def reconcile(
    redis: RedisClient,
    pool: asyncpg.Pool,
    scripts: Scripts,
    board: BoardKeys,
    *,
    repair: bool = True,
    clock: PeriodClock = REAL_CLOCK,
) -> ReconcileReport:
    """Compare the live board with PostgreSQL plus the unsynced stream; where they
    differ, PostgreSQL wins: the board is rebuilt from it (Redis's damage is never
    copied into PostgreSQL). Each difference is logged."""
    report = ReconcileReport()
    async with redis_errors():
        if await redis.xlen(board.events) > RECONCILE_MAX_TAIL:
            report.skipped = "the syncer is behind; reconciling once it has caught up"
            return report
    async with rebuild_lock(redis, board) as held:
        if not held:
            report.skipped = "another process is rebuilding the board"
            return report
        live = LiveBoard(scripts)
        expected = await expected_board(redis, pool, board, live, clock)
        compare(live, expected, report)
        for user_id, held_score, want in report.examples:
            log.warning(
                "reconcile %s: player %s holds %s on the board, PostgreSQL says %s",
                board.name,
                user_id,
                held_score,
                want,
            )
        if not report.clean and repair:
            await install(redis, scripts, board, expected)
            report.repaired = True
            log.warning("reconcile %s: repaired the board (%s)", board.name, report.differences)
    return report


async def persisted_max_seq(pool: asyncpg.Pool, board: str = DEFAULT_BOARD) -> int:
    """The highest update sequence PostgreSQL holds of the board (its high-water mark)."""
    async with db_errors():
        if board == DEFAULT_BOARD:
            value = await pool.fetchval(_MAX_SEQ_SQL)
        else:
            value = await pool.fetchval(_BOARD_MAX_SEQ_SQL, board)
    return int(value or 0)
