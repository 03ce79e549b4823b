"""The write-behind syncer: a board's event stream into PostgreSQL, exactly once.

Shape: `Syncer(...)`, `run()` looping over `sync_once()` (one round each), a burst mode
that stops when the stream is drained, a graceful stop that finishes the round in
flight, and a health record with a TTL. Entries are acknowledged only after the
transaction that persisted them has committed, and the stream is trimmed only behind
what the group has acknowledged.

A round either retries what this consumer holds unacknowledged (after a restart or a
failure), takes over a dead consumer's entries, or reads new ones: up to
`sync_concurrency` batches, each committed in its own transaction while the next is
read and parsed, so PostgreSQL works while Python does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from redis.exceptions import ResponseError

from scoreboard.auth.audit import AuditTrail
from scoreboard.boards.guard import BoardGuard
from scoreboard.boards.rebuild import PeriodClock, persisted_max_seq
from scoreboard.boards.reconcile import ReconcileReport, reconcile
from scoreboard.core import tracing
from scoreboard.core.errors import DatabaseUnavailable, ServiceUnavailable
from scoreboard.core.settings import Settings
from scoreboard.storage.database import db_errors
from scoreboard.storage.keys import DEFAULT_BOARD, Keys
from scoreboard.storage.redis_client import RedisClient, as_text, consumer_lag, redis_errors
from scoreboard.storage.scripts import Scripts
from scoreboard.sync.events import StreamEvent, parse
from scoreboard.sync.pause import Pause, until_postgres_answers
from scoreboard.sync.persist import persist_batch, persist_fresh

log = logging.getLogger("scoreboard.sync")

GROUP = "sync"
HEALTH_TTL_SECONDS = 30
HEALTH_EVERY_SECONDS = 1.0
BOARD_CHECK_SECONDS = 1.0
FLOOD_FLUSH_SECONDS = 5.0
# A periodic reconcile reads the whole board: on average it compares at most this many
# entries a second (a board larger than the interval allows is compared less often), so
# the syncer's CPU, averaged over time, stays flat as a board grows (bench/SCALE.md: about
# 10 µs per entry)
RECONCILE_ENTRIES_PER_SECOND = 5_000
# ...and reads them at no more than this many a second, so that a big board's compare
# is spread instead of one burst (a million players: 40 s instead of about 17 at full
# speed; a thousand: unchanged). Reads that wait on Redis still slow while a compare of
# a million runs (bench/RESULTS.md)
RECONCILE_SCAN_ENTRIES_PER_SECOND = 25_000
CLAIM_EVERY_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 5.0
# What PostgreSQL may refuse about one row (a value out of a column's range, say): that
# entry goes to the dead letters with the reason; the others are persisted.
ROW_ERRORS = (asyncpg.PostgresError, ValueError, OverflowError, TypeError)
# ...except a transaction PostgreSQL rolled back for what ran beside it (a deadlock, a
# serialization failure): nothing is wrong with its rows, so the batch is committed
# again as it is, this many times in all; then the round fails and the batch stays
# pending for the next.
TRANSIENT_ERRORS = (asyncpg.TransactionRollbackError,)
COMMIT_ATTEMPTS = 3

Entry = tuple[Any, dict[Any, Any] | None]
_TRACE = tracing.TRACE_FIELD.encode()


def _entries(reply: Any) -> list[Entry]:
    """The entries of a one-stream XREADGROUP reply, in its RESP2 or RESP3 shape."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values()))[0])
    return list(reply[0][1])


def next_id(stream_id: str) -> str:
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


@dataclass
class _Batch:
    """Entries read together: parsed events, ids with nothing to persist, and failures."""

    entries: list[Entry]
    events: list[StreamEvent]
    done: list[str]
    failed: list[tuple[Entry, str]]
    traced: list[tuple[str, str]]  # (event id, traceparent) of traced requests' events

    def entry(self, stream_id: str) -> Entry:
        """The entry read under `stream_id` (for the rare one PostgreSQL refuses)."""
        return next(entry for entry in self.entries if as_text(entry[0]) == stream_id)


def _prepare(entries: list[Entry]) -> _Batch:
    batch = _Batch(entries, [], [], [], [])
    traced = tracing.enabled()
    for stream_id, raw in entries:
        text_id = as_text(stream_id)
        if not raw:  # trimmed or deleted while pending: nothing to persist
            batch.done.append(text_id)
            continue
        try:
            event = parse(text_id, raw)
        except (KeyError, ValueError, TypeError) as exc:
            batch.failed.append(((stream_id, raw), f"malformed: {exc!r}"))
            continue
        batch.events.append(event)
        if traced and (parent := raw.get(_TRACE) or raw.get(tracing.TRACE_FIELD)):
            batch.traced.append((event.event_id, as_text(parent)))
    return batch


@dataclass
class SyncStats:
    committed_events: int = 0
    transactions: int = 0
    dead_letters: int = 0
    last_commit_ms: int | None = None
    commit_seconds: float = 0.0  # time spent committing batches, all of them
    last_batch_events: int = 0
    reconciles: int = 0
    repairs: dict[str, int] = field(default_factory=dict)  # differences repaired, by kind
    rollbacks: int = 0  # times the update sequence went back (Redis lost updates)
    flood_records: int = 0  # counted audit records written for refusal floods
    rolled_back: int = 0  # transactions PostgreSQL rolled back for what ran beside them


class Syncer:
    def __init__(
        self,
        settings: Settings,
        redis: RedisClient,
        pool: asyncpg.Pool,
        *,
        board: str = DEFAULT_BOARD,
        consumer: str | None = None,
        scripts: Scripts | None = None,
        clock: PeriodClock | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.pool = pool
        self.consumer = consumer or settings.sync_consumer
        self.keys = Keys.for_settings(settings)
        self.board = self.keys.board(board)
        self.scripts = scripts or Scripts(redis)
        self.stream = self.board.events
        self.clock = clock or PeriodClock.from_settings(settings)
        self.guard = BoardGuard(redis, pool, self.scripts, self.board, clock=self.clock)
        self.audit = AuditTrail(self.scripts, self.board, settings)
        self._next_flood_flush = 0.0
        self.stats = SyncStats()
        self._seq_seen: int | None = None  # highest update sequence read or persisted
        self._next_reconcile = time.monotonic() + settings.reconcile_interval_ms / 1000
        self._stopping = asyncio.Event()
        self._group_ready = False
        self._next_claim = 0.0
        self._next_board_check = 0.0
        self._reconcile_now = False
        self._health_written = -float(HEALTH_TTL_SECONDS)
        self._health_said: tuple[object, ...] = ()  # what the last health record said
        self.pause = Pause(f"board {board}: sync")
        self.reconcile_interval = settings.reconcile_interval_ms / 1000

    def stop(self) -> None:
        """Finish the batch in flight, then return from `run()`."""
        self._stopping.set()

    async def run(self, *, burst: bool = False) -> None:
        """Until told to stop (or drained, in burst mode). Nothing Redis or PostgreSQL
        can answer ends it: an outage or an error pauses it, with backoff, and while
        PostgreSQL is away it asks PostgreSQL every POSTGRES_PROBE_SECONDS and goes on
        as soon as it answers."""
        backoff = 0.5
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                await self._check_board()
                await self._flush_floods()
                processed = await self.sync_once(block=not burst)
                await self.reconcile_if_due()
                backoff = 0.5
            except Exception as exc:
                self.failed(exc)
                waited = (
                    isinstance(exc, DatabaseUnavailable) and await self._until_postgres_answers()
                )
                if not waited:  # a failure that no outage explains: back off
                    await self._sleep(backoff * (0.5 + random.random()))  # noqa: S311
                    backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
                continue
            if burst:
                if processed == 0:
                    return
                continue
            if 0 < processed < self.settings.sync_batch_size:
                await self._gather_next(started)

    async def _until_postgres_answers(self) -> bool:
        return await until_postgres_answers(
            self.pool,
            self._stopping,
            lambda: self._write_health(at_most_every=HEALTH_EVERY_SECONDS),
        )

    async def _gather_next(self, round_started: float) -> None:
        """Caught up: let the next batch gather until the interval is over. One larger
        transaction costs PostgreSQL far less per event than many small ones (a player
        with several events in it is updated once), which matters most under load."""
        remaining = self.settings.sync_interval_ms / 1000 - (time.monotonic() - round_started)
        if remaining > 0:
            await self._sleep(remaining)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _check_board(self) -> None:
        """A board that Redis lost is rebuilt here (or by the server, whichever wins)."""
        now = time.monotonic()
        if now < self._next_board_check:
            return
        self._next_board_check = now + BOARD_CHECK_SECONDS
        await self.guard.check()

    async def _flush_floods(self) -> None:
        """Counted records of refusal floods whose window is over, into the stream
        (and so into PostgreSQL with the next batches)."""
        now = time.monotonic()
        if now < self._next_flood_flush:
            return
        self._next_flood_flush = now + FLOOD_FLUSH_SECONDS
        self.stats.flood_records += await self.audit.flush_floods(self.redis)

    def reconcile_due(self) -> bool:
        interval = self.reconcile_interval
        return self._reconcile_now or (interval > 0 and time.monotonic() >= self._next_reconcile)

    async def reconcile_if_due(self) -> ReconcileReport | None:
        """Compare the board with PostgreSQL now and then, and at once when the update
        sequence went back; repair what differs."""
        if not self.reconcile_due():
            return None
        interval = self.reconcile_interval
        now = time.monotonic()
        self._next_reconcile = now + interval
        report = await reconcile(
            self.redis,
            self.pool,
            self.scripts,
            self.board,
            clock=self.clock,
            pace=RECONCILE_SCAN_ENTRIES_PER_SECOND,
        )
        # a board too large to compare every interval at the rate is compared less often
        self._next_reconcile = now + max(interval, report.scanned / RECONCILE_ENTRIES_PER_SECOND)
        if report.skipped:
            log.info("reconcile skipped: %s", report.skipped)
            return report
        self._reconcile_now = False
        self.stats.reconciles += 1
        if report.repaired:
            for kind, count in report.differences.items():
                self.stats.repairs[kind] = self.stats.repairs.get(kind, 0) + count
        return report

    def failed(self, exc: BaseException) -> None:
        """A round failed: say so (once per change), and make sure of the consumer
        group next time (the stream may be new: Redis lost it)."""
        self._group_ready = False
        self.pause.note(exc)

    def _health_state(self) -> tuple[object, ...]:
        return (
            self.stats.committed_events,
            self.stats.dead_letters,
            self.stats.reconciles,
            self.stats.rollbacks,
            self.guard.stats.lost,
            self.guard.stats.rebuilt,
            self.pause.reason,
        )

    def _health_due(self) -> bool:
        """Whether the health record says something new, or would soon expire (an idle
        board's record is not rewritten every visit)."""
        if self._health_state() != self._health_said:
            return True
        return time.monotonic() - self._health_written > HEALTH_TTL_SECONDS / 2

    def pace_reconcile(self, interval: float, first_in: float | None) -> None:
        """Reconcile every `interval` seconds (a fleet of many boards spreads them
        out); the next `first_in` seconds from now (None: as planned)."""
        self.reconcile_interval = interval
        if first_in is not None:
            self._next_reconcile = time.monotonic() + first_in

    async def process(self, entries: list[Entry] | None, *, max_batches: int) -> int:
        """One turn of a fleet's board: persist `entries` (new entries the fleet already
        read for this consumer), or with None whatever a round finds (its own pending
        entries first), then keep reading while batches come full, `max_batches` at
        most; returns the entries settled."""
        if entries is None:
            return await self.sync_once(block=False)
        await self._ensure_group()
        return await self._sync_new(False, first=entries, max_batches=max_batches)

    async def maintain(self, *, reconcile: bool = True) -> bool:
        """A fleet's visit: the board checked (rebuilt if lost), refusal floods
        flushed, a reconcile when due (unless the caller runs those itself), the health
        record refreshed. True when entries of the board are pending (read and not
        acknowledged: a read whose answer was lost, a consumer that died): a round of
        `sync_once` settles them."""
        await self._check_board()
        await self._flush_floods()
        if reconcile:
            await self.reconcile_if_due()
        if self._health_due():
            await self._write_health()
        await self._ensure_group()
        async with redis_errors():
            pending = await self.redis.xpending(self.stream, GROUP)
        return bool(pending["pending"])

    async def _watch_sequence(self, events: list[StreamEvent]) -> None:
        """New entries always carry higher update sequences than anything read before:
        one that does not means Redis forgot updates it had acknowledged (its AOF was
        rolled back, or a replica that missed them took over). PostgreSQL still holds
        them; the board is reconciled from it."""
        seqs = [event.seq for event in events if event.seq is not None]
        if not seqs:
            return
        if self._seq_seen is None:
            self._seq_seen = await persisted_max_seq(self.pool, self.board.name)
        if min(seqs) <= self._seq_seen:
            self.stats.rollbacks += 1
            self._reconcile_now = True
            log.error(
                "board %s: update sequence %d follows %d: Redis lost acknowledged updates;"
                " reconciling the board with PostgreSQL",
                self.board.name,
                min(seqs),
                self._seq_seen,
            )
        self._seq_seen = max(self._seq_seen, max(seqs))

    async def sync_once(self, *, block: bool = False) -> int:
        """Persist one round; returns how many stream entries it settled or retried."""
        await self._ensure_group()
        retry = await self._own_pending() or await self._claim_idle()
        if retry:
            await self._settle(_prepare(retry), fresh=False)
            self.pause.clear()
            await self._write_health()
            return len(retry)
        return await self._sync_new(block)

    async def _sync_new(
        self, block: bool, *, first: list[Entry] | None = None, max_batches: int = 0
    ) -> int:
        """Read new batches while full ones keep coming (`first`: a batch read already;
        `max_batches`: a bound, 0 for none), each committed (then acknowledged) by a
        task of its own while the next is read and parsed, with at most
        `sync_concurrency` in flight. The first failure ends the round; the failed
        batch stays pending for the next."""
        entries = first if first is not None else await self._read_new(block)
        full_size = len(first) if first else self.settings.sync_batch_size
        batches = 0
        count = 0
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while entries:
                count += len(entries)
                batch = _prepare(entries)
                await self._watch_sequence(batch.events)
                in_flight.add(asyncio.create_task(self._settle(batch, fresh=True)))
                batches += 1
                full = len(entries) >= full_size
                full_size = self.settings.sync_batch_size
                if not full or self._stopping.is_set() or batches == max_batches:
                    break
                if len(in_flight) >= self.settings.sync_concurrency:
                    finished, in_flight = await asyncio.wait(
                        in_flight, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in finished:
                        task.result()
                else:
                    await asyncio.sleep(0)  # let the commit start before reading more
                entries = await self._read_new(False)
        finally:
            results = await asyncio.gather(*in_flight, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        self.pause.clear()
        await self._write_health()
        return count

    async def _settle(self, batch: _Batch, *, fresh: bool) -> None:
        """Persist, acknowledge what committed, count failures, trim."""
        done, failed = list(batch.done), list(batch.failed)
        if batch.events:
            with tracing.persisting(batch.traced, len(batch.events)):
                persisted, rejected = await self._persist(batch.events, fresh=fresh)
            done += persisted
            failed += [(batch.entry(sid), reason) for sid, reason in rejected]
        await self._acknowledge(done)
        for entry, reason in failed:
            await self._record_failure(entry, reason)
        await self._trim()
        await self._write_health(at_most_every=HEALTH_EVERY_SECONDS)

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        async with redis_errors():
            try:
                await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._group_ready = True

    async def _read(self, start: str, block_ms: int | None) -> list[Entry]:
        async with redis_errors():
            reply = await self.redis.xreadgroup(
                GROUP,
                self.consumer,
                {self.stream: start},
                count=self.settings.sync_batch_size,
                block=block_ms,
            )
        return _entries(reply)

    async def _own_pending(self) -> list[Entry]:
        """Entries delivered to this consumer before and not acknowledged (a restart)."""
        return await self._read("0", None)

    async def _read_new(self, block: bool) -> list[Entry]:
        return await self._read(">", self.settings.sync_block_ms if block else None)

    async def _claim_idle(self) -> list[Entry]:
        """Take over entries another consumer read and never acknowledged (it died)."""
        now = time.monotonic()
        if now < self._next_claim:
            return []
        self._next_claim = now + CLAIM_EVERY_SECONDS
        async with redis_errors():
            reply = await self.redis.xautoclaim(
                self.stream,
                GROUP,
                self.consumer,
                min_idle_time=self.settings.sync_claim_idle_ms,
                start_id="0-0",
                count=self.settings.sync_batch_size,
            )
        claimed = list(reply[1]) if reply else []
        if claimed:
            log.info("claimed %d idle entries from dead consumers", len(claimed))
        return claimed

    async def _persist(
        self, events: list[StreamEvent], *, fresh: bool
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """(stream ids persisted, (stream id, error) refused by PostgreSQL)."""
        if not events:
            return [], []
        try:
            await self._commit(events, fresh=fresh)
            return [event.stream_id for event in events], []
        except ROW_ERRORS as exc:
            if len(events) == 1:
                return [], [(events[0].stream_id, repr(exc))]
        persisted, rejected = [], []
        for event in events:  # find the entries PostgreSQL refuses, one by one
            try:
                await self._commit([event], fresh=False)
                persisted.append(event.stream_id)
            except ROW_ERRORS as exc:
                rejected.append((event.stream_id, repr(exc)))
        return persisted, rejected

    async def _commit(self, events: list[StreamEvent], *, fresh: bool) -> None:
        """Commit `events` in one transaction, again when PostgreSQL rolled it back for
        what ran beside it. Past `COMMIT_ATTEMPTS` it raises ServiceUnavailable, which
        is no row error: nothing goes to the dead letters, and the batch stays pending."""
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                await self._commit_once(events, fresh=fresh)
                return
            except TRANSIENT_ERRORS as exc:
                self.stats.rolled_back += 1
                log.warning(
                    "board %s: a batch of %d events was rolled back (%r), attempt %d of %d",
                    self.board.name,
                    len(events),
                    exc,
                    attempt,
                    COMMIT_ATTEMPTS,
                )
                if attempt == COMMIT_ATTEMPTS:
                    raise ServiceUnavailable(
                        f"PostgreSQL rolled back a batch {attempt} times: {exc!r}"
                    ) from exc

    async def _commit_once(self, events: list[StreamEvent], *, fresh: bool) -> None:
        started = time.perf_counter()
        async with db_errors(), self.pool.acquire() as conn:
            if not fresh or not await self._commit_fresh(conn, events):
                async with conn.transaction():
                    await persist_batch(conn, events)
        self.stats.commit_seconds += time.perf_counter() - started
        self.stats.committed_events += len(events)
        self.stats.transactions += 1
        self.stats.last_batch_events = len(events)
        self.stats.last_commit_ms = int(time.time() * 1000)

    async def _commit_fresh(self, conn: asyncpg.Connection, events: list[StreamEvent]) -> bool:
        """False when an event of a new batch was persisted already: nothing written."""
        try:
            async with conn.transaction():
                await persist_fresh(conn, events)
        except asyncpg.UniqueViolationError:
            log.info("a new batch holds events persisted before; replaying it with checks")
            return False
        return True

    async def _acknowledge(self, stream_ids: list[str]) -> None:
        if stream_ids:
            async with redis_errors():
                await self.redis.xack(self.stream, GROUP, *stream_ids)

    async def _record_failure(self, entry: Entry, error: str) -> None:
        """Count a failed attempt; past the limit the entry goes to the dead letters."""
        stream_id, raw = as_text(entry[0]), entry[1] or {}
        failures = self.keys.sync_failures(self.board.name)
        async with redis_errors():
            attempts = int(await self.redis.hincrby(failures, stream_id, 1))
            if attempts < self.settings.sync_max_attempts:
                log.warning("entry %s failed (attempt %d): %s", stream_id, attempts, error)
                return
            fields: dict[Any, Any] = {as_text(k): as_text(v) for k, v in raw.items()}
            fields.update(stream_id=stream_id, error=error[:1000], attempts=str(attempts))
            await self.redis.xadd(self.keys.dead_letters(self.board.name), fields)
            await self.redis.xack(self.stream, GROUP, stream_id)
            await self.redis.hdel(failures, stream_id)
        self.stats.dead_letters += 1
        log.error("entry %s moved to the dead letters after %d attempts", stream_id, attempts)

    async def _trim(self) -> None:
        """Drop entries the group has acknowledged: those older than the oldest pending
        entry, or than everything delivered when nothing is pending. Nothing while a
        rebuild reads the stream."""
        async with redis_errors():
            pending = await self.redis.xpending(self.stream, GROUP)
            if pending["pending"]:
                threshold = as_text(pending["min"])
            else:
                group = await self._group_info()
                delivered = as_text(group.get("last-delivered-id", "0-0"))
                threshold = next_id(delivered)
        await self.scripts.trim_stream(self.board, threshold)

    async def _group_info(self) -> dict[str, Any]:
        for group in await self.redis.xinfo_groups(self.stream):
            if as_text(group["name"]) == GROUP:
                return dict(group)
        return {}

    async def _write_health(self, at_most_every: float = 0.0) -> None:
        now = time.monotonic()
        if now - self._health_written < at_most_every:
            return
        self._health_written = now
        self._health_said = self._health_state()
        async with redis_errors():
            group = await self._group_info()
            lag = await consumer_lag(self.redis, self.stream, group)
            dead = await self.redis.xlen(self.keys.dead_letters(self.board.name))
            record = {
                "consumer": self.consumer,
                "pending": int(group.get("pending") or 0),
                "lag": lag,
                "dead_letters": int(dead),
                "committed_events": self.stats.committed_events,
                "transactions": self.stats.transactions,
                "commit_seconds": round(self.stats.commit_seconds, 6),
                "last_batch_events": self.stats.last_batch_events,
                "last_commit_ms": self.stats.last_commit_ms,
                "updated_ms": int(time.time() * 1000),
                "board_lost": self.guard.stats.lost,
                "rebuilds": self.guard.stats.rebuilt,
                "reconciles": self.stats.reconciles,
                "repairs": self.stats.repairs,
                "rollbacks": self.stats.rollbacks,
                "paused": self.pause.reason,
                "paused_since_ms": self.pause.since_ms,
            }
            await self.redis.set(
                self.keys.sync_health(self.board.name), json.dumps(record), ex=HEALTH_TTL_SECONDS
            )
