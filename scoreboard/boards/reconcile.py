"""Comparing a live board with PostgreSQL plus the updates it does not hold, and
repairing what differs, without ever holding Redis for long.

Every ranking of the board is compared the same way: the all-time one and each current
period's (a difference in a period is named with its period id, as in
`"behind (daily:2026-12-07)"`). Each live ranking is read in bounded chunks
(`scan_board`: ZSCAN of the ranking's sorted set, each chunk with the update sequence
of its instant and, of that instant, the counts of the ranking's members and of its
players entries) while updates go on. The counts differ only when the ranking holds a
member no entry stands behind (a stray) or an entry without its member: a chunk's
counts are one instant's, so no update in flight makes them differ. (What the counts
cannot tell: an entry whose tie is not its member's while both stand. Nothing but a
hand-edited entry makes one; the player's next update then leaves the old member
beside the new one, and that stray is found.) Each player read
is compared with what the ranking should hold at the sequence of its own chunk:
PostgreSQL's snapshot plus the unpersisted updates up to that sequence (`Baseline`).
A player that looks different is read again with others in one instant
(`read_standings`) and compared at that instant's sequence, so only a real difference
counts, never a change that happened during the scan. Updates held only in the dead
letters count as applied: a board ahead of PostgreSQL because of them is reported, not
taken down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import asyncpg

from scoreboard.boards.rebuild import (
    REAL_CLOCK,
    Baseline,
    PeriodClock,
    read_baseline,
    rebuild_board,
    rebuild_lock,
    trim_hold,
)
from scoreboard.core.turns import in_slices
from scoreboard.core.values import banned_score
from scoreboard.storage.keys import BoardKeys, RankingKeys
from scoreboard.storage.redis_client import RedisClient, redis_errors
from scoreboard.storage.scripts import LiveStanding, Scripts

log = logging.getLogger("scoreboard.reconcile")

# how far the syncer may be behind before a reconcile waits for it
RECONCILE_MAX_TAIL = 50_000
# members a scan chunk asks for: about 0.15 ms of Redis at a million players (ZSCAN's
# own cost, about 1.5 µs a member there), so a read never waits long behind one
SCAN_COUNT = 100
pause = asyncio.sleep  # how a paced scan waits (a test counts the waits)
CONFIRM_CHUNK = 500  # players re-read in one instant


@dataclass
class ReconcileReport:
    """How the live board differed from PostgreSQL plus the unsynced updates."""

    players: int = 0
    differences: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[str, int | None, int | None]] = field(default_factory=list)
    repaired: bool = False
    skipped: str | None = None
    scanned: int = 0  # entries read from the live board
    chunks: int = 0  # script calls that read them
    rechecked: int = 0  # players read again in one instant
    dead_letters: int = 0  # applied updates PostgreSQL lacks that sit in the dead letters
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.differences

    def note(self, kind: str, user_id: str, live: int | None, expected: int | None) -> None:
        self.differences[kind] = self.differences.get(kind, 0) + 1
        if len(self.examples) < 20:
            self.examples.append((user_id, live, expected))

    def summary(self) -> str:
        return (
            f"{self.players} players expected, {self.scanned} live entries read in"
            f" {self.chunks} chunks, {self.rechecked} re-checked,"
            f" differences {self.differences or 'none'},"
            f" {'repaired' if self.repaired else 'nothing repaired'},"
            f" {self.dead_letters} dead-lettered updates held, {self.seconds * 1000:.0f} ms"
        )


@dataclass(frozen=True)
class Ranking:
    """One ranking of the board as the reconciler compares it."""

    keys: RankingKeys
    period_id: str | None = None  # None: the all-time ranking

    def named(self, kind: str) -> str:
        return kind if self.period_id is None else f"{kind} ({self.period_id})"


class Seen(NamedTuple):
    """A player as one read of the live board found it, and the sequence of that read
    (a named tuple: one per player read)."""

    standing: LiveStanding
    seq: int


def _kind(seen: LiveStanding, want_score: int, want_banned: bool, ranking: Ranking) -> str | None:
    """How a live standing differs from what the ranking should hold (None: it does
    not). The all-time ranking keeps every banned player's entry; a period keeps those
    of the banned players who scored in it."""
    held_banned = banned_score(seen.banned) if seen.banned is not None else None
    if want_banned:
        if held_banned is None:
            kept = ranking.period_id is None or want_score > 0
            return "ban_missing" if kept else None
        if seen.score is not None:
            return "banned_on_board"
        return "banned_score" if held_banned != want_score else None
    if held_banned is not None:
        return "unban_missing"
    if want_score <= 0:
        return None if seen.score is None else "unknown"
    if seen.score is None:
        return "missing"
    if seen.score < want_score:
        return "behind"
    return "ahead" if seen.score > want_score else None


def _differs(ranking: Ranking, seen: Seen, want: tuple[int, bool]) -> tuple[str, int] | None:
    kind = _kind(seen.standing, want[0], want[1], ranking)
    return None if kind is None else (ranking.named(kind), want[0])


class _LiveScan:
    """Every player of a live ranking, chunk by chunk; the last read of each wins."""

    def __init__(
        self,
        scripts: Scripts,
        board: BoardKeys,
        ranking: Ranking,
        report: ReconcileReport,
        pace: float | None = None,
    ) -> None:
        self._scripts = scripts
        self._board = board
        self._ranking = ranking
        self._report = report
        self._pace = pace
        self.seen: dict[str, Seen] = {}
        self.seq = 0
        self.unmatched: tuple[int, int] | None = None  # (members, entries) that differed

    async def _keep_pace(self, started: float, read: int) -> None:
        """With a pace (entries a second), wait until the entries read so far are due."""
        if self._pace:
            ahead = started + read / self._pace - time.monotonic()
            if ahead > 0:
                await pause(ahead)

    async def read(self) -> None:
        started, read = time.monotonic(), 0
        for banned in (False, True):
            cursor = "0"
            while True:
                chunk = await self._scripts.scan_board(
                    self._board,
                    banned=banned,
                    cursor=cursor,
                    count=SCAN_COUNT,
                    ranking=self._ranking.keys,
                )
                seq = chunk.seq or 0
                self.seq = max(self.seq, seq)
                self._report.chunks += 1
                self._report.scanned += len(chunk.values)
                read += len(chunk.values)
                seen = self.seen
                if banned:  # after the players: a banned entry keeps the score read
                    for user_id, value in chunk.values:
                        held = seen.get(user_id)
                        score = held.standing.score if held else None
                        seen[user_id] = Seen(LiveStanding(score, value), seq)
                else:
                    if chunk.ranked != chunk.entries:
                        self.unmatched = (chunk.ranked, chunk.entries)
                    for user_id, value in chunk.values:
                        seen[user_id] = Seen(LiveStanding(int(float(value)), None), seq)
                cursor = chunk.cursor
                if cursor == "0":
                    break
                await self._keep_pace(started, read)


async def _confirm(
    scripts: Scripts,
    redis: RedisClient,
    board: BoardKeys,
    ranking: Ranking,
    baseline: Baseline,
    suspects: list[str],
    report: ReconcileReport,
) -> int:
    """Read the suspects again, each chunk in one instant, and note what still differs;
    returns the highest sequence read."""
    highest = 0
    for offset in range(0, len(suspects), CONFIRM_CHUNK):
        chunk = suspects[offset : offset + CONFIRM_CHUNK]
        seq, standings = await scripts.read_standings(board, chunk, ranking.keys)
        await baseline.extend(redis, board)  # every update up to `seq` is in the stream
        highest = max(highest, seq or 0)
        report.rechecked += len(chunk)
        for user_id in chunk:
            seen = Seen(standings[user_id], seq or 0)
            found = _differs(
                ranking, seen, baseline.standing_at(user_id, seen.seq, ranking.period_id)
            )
            if found is not None:
                kind, want = found
                report.note(kind, user_id, standings[user_id].score, want)
    return highest


async def _compare(
    scripts: Scripts,
    redis: RedisClient,
    board: BoardKeys,
    ranking: Ranking,
    baseline: Baseline,
    report: ReconcileReport,
    pace: float | None,
) -> None:
    scan = _LiveScan(scripts, board, ranking, report, pace)
    await scan.read()
    if scan.unmatched is not None:
        ranked, entries = scan.unmatched
        kind = "stray_members" if ranked > entries else "entries_unranked"
        report.note(ranking.named(kind), "-", ranked, entries)
    await baseline.extend(redis, board)  # past every sequence the scan read
    unseen = Seen(LiveStanding(None, None), scan.seq)
    all_time = ranking.period_id is None
    suspects = []
    tailed = baseline.by_user  # a player without updates in the tail: any seq reads alike
    read = scan.seen
    # every player read, then every player expected and not read: each once, in slices
    for players, expected_only in ((read, False), (baseline.users(ranking.period_id), True)):
        async for chunk in in_slices(players):
            for user_id in chunk:
                if expected_only and user_id in read:
                    continue
                seen = read.get(user_id, unseen)
                want = baseline.standing_at(user_id, seen.seq, ranking.period_id)
                if all_time:
                    score, banned = (
                        want if user_id not in tailed else baseline.standing_at(user_id, scan.seq)
                    )
                    report.players += score > 0 or banned
                if _differs(ranking, seen, want) is not None:
                    suspects.append(user_id)
    suspects.sort()
    confirmed = await _confirm(scripts, redis, board, ranking, baseline, suspects, report)
    seq = max(scan.seq, confirmed)
    persisted_seq = max((s.seq for s in baseline.persisted.values()), default=0)
    if all_time and seq < persisted_seq:
        report.note("sequence_behind", "-", seq, persisted_seq)


async def reconcile(
    redis: RedisClient,
    pool: asyncpg.Pool,
    scripts: Scripts,
    board: BoardKeys,
    *,
    repair: bool = True,
    clock: PeriodClock = REAL_CLOCK,
    pace: float | None = None,
) -> ReconcileReport:
    """Compare the live board with PostgreSQL plus the unsynced and dead-lettered
    updates; where they differ, PostgreSQL wins: the board is rebuilt from it (Redis's
    damage is never copied into PostgreSQL). With `pace`, the live rankings are read
    at no more than that many entries a second, spreading a big board's read (and the
    Redis and CPU time it takes from live traffic) over a longer compare. One line is
    logged per run."""
    started = time.perf_counter()
    report = ReconcileReport()
    async with redis_errors():
        if await redis.xlen(board.events) > RECONCILE_MAX_TAIL:
            report.skipped = "the syncer is behind; reconciling once it has caught up"
            return report
    # The compare holds only the trim hold (the stream keeps what it reads); bans,
    # admin changes and the guard's rebuilds go on meanwhile. The rebuild lock is taken
    # for a repair alone, which reads PostgreSQL afresh: a ban that landed during the
    # compare is then part of what is installed, never undone by an older snapshot.
    async with trim_hold(redis, board) as held:
        if not held:
            report.skipped = "another process is reconciling the board"
            return report
        baseline = await read_baseline(redis, pool, board, clock)
        report.dead_letters = baseline.dead_letters
        rankings = [Ranking(board.ranking())] + [
            Ranking(board.ranking(period.period_id), period.period_id)
            for period in baseline.period_rows
        ]
        for ranking in rankings:
            await _compare(scripts, redis, board, ranking, baseline, report, pace)
        for user_id, held_score, want in report.examples:
            log.warning(
                "reconcile %s: player %s holds %s on the board, PostgreSQL says %s",
                board.name,
                user_id,
                held_score,
                want,
            )
    if not report.clean and repair:
        async with rebuild_lock(redis, board) as locked:
            if locked:
                await rebuild_board(redis, pool, scripts, board, clock)
                report.repaired = True
            else:
                report.skipped = "another process is rebuilding the board"
    report.seconds = time.perf_counter() - started
    level = logging.INFO if report.clean and not report.dead_letters else logging.WARNING
    log.log(level, "reconcile %s: %s", board.name, report.summary())
    return report
