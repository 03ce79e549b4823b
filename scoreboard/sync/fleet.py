"""The syncer process: every board of the catalogue persisted by one fleet, with a
bounded number of Redis connections, tasks and memory however many boards there are.
Boards never mix: every transaction holds one board's events.

Nothing blocks on Redis. A sweep reads the new entries of idle boards a few hundred
streams at a time (on one Redis, one XREADGROUP names them all; on a cluster, where a
command reaches one slot, a pipeline of one read per board): every
`SCOREBOARD_SYNC_INTERVAL_MS` those that had entries in the last `HOT_SECONDS`, every
`COLD_SWEEP_SECONDS` all of them. A board with new entries gets a turn: its `Syncer`
persists what the sweep read and reads on while batches come full, a few batches at
most, with a bounded number of turns at once. A turn that fails leaves its entries
pending and the board is retried; while PostgreSQL is away the fleet stops reading,
asks PostgreSQL every quarter second and goes on as soon as it answers. A second task
visits the boards in turn, each at most once a second and at most
`MAINTAIN_PER_SECOND` visits a second in all: the board checked (and rebuilt if Redis
lost it), refusal floods flushed, its health record refreshed. A third runs the
reconciles that are due, one at a time (spread so that at most `RECONCILES_PER_SECOND`
run), so a large board's compare holds up no other board's visit. The fleet's own record
(`Keys.sync_fleet`) says every second that it is alive and whether it is paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.exceptions import ResponseError

from scoreboard.boards.catalogue import REFRESH_SECONDS, BoardCatalog
from scoreboard.boards.rebuild import PeriodClock
from scoreboard.core.errors import DatabaseUnavailable, ServiceUnavailable
from scoreboard.core.settings import Settings
from scoreboard.storage.keys import Keys
from scoreboard.storage.partitions import keep_months
from scoreboard.storage.pipeline import PipelinedConnection, supports
from scoreboard.storage.redis_client import (
    SOCKET_TIMEOUT_SECONDS,
    RedisClient,
    keep_replica_connections_closed,
    redis_errors,
)
from scoreboard.storage.scripts import Scripts
from scoreboard.sync.pause import Pause, until_postgres_answers
from scoreboard.sync.syncer import (
    GROUP,
    HEALTH_TTL_SECONDS,
    MAX_BACKOFF_SECONDS,
    Entry,
    Syncer,
)

log = logging.getLogger("scoreboard.sync")

SWEEP_STREAMS = 250  # streams one sweep read names
HOT_SECONDS = 10.0  # a board that had entries this recently is swept every interval...
COLD_SWEEP_SECONDS = 0.5  # ...the others this often
SWEEP_COUNT = 100  # entries of one stream a sweep reads (the board's turn reads on)
MAX_BATCHES = 8  # batches one turn persists before the other boards get theirs
TURNS = 4  # boards persisting at once
MAINTAIN_PER_SECOND = 100  # board visits a second, all boards together
RECONCILES_PER_SECOND = 20  # reconciles a second, all boards together
RECONCILE_LOOK_SECONDS = 0.5  # how often the reconcile task looks for a board that is due
HEARTBEAT_SECONDS = 1.0
PARTITION_SECONDS = 3600.0  # how often the monthly partitions are looked after...
PARTITION_RETRY_SECONDS = 60.0  # ...and how soon again when PostgreSQL did not answer


def _chunks(names: list[str], size: int) -> Iterable[list[str]]:
    for offset in range(0, len(names), size):
        yield names[offset : offset + size]


def _by_stream(reply: Any) -> dict[str, list[Entry]]:
    """A many-stream XREADGROUP reply, in its RESP2 or RESP3 shape, by stream name."""
    if not reply:
        return {}
    pairs = reply.items() if isinstance(reply, dict) else reply
    found = {}
    for stream, value in pairs:
        entries = value[0] if isinstance(reply, dict) else value
        name = stream.decode() if isinstance(stream, bytes) else str(stream)
        if entries:
            found[name] = list(entries)
    return found


def _from_raw(reply: Any) -> dict[str, list[Entry]]:
    """A many-stream XREADGROUP reply as hiredis parses it (flat field lists), in the
    shape redis-py gives the syncer (fields as a dict)."""
    found = {}
    for stream, entries in reply or []:
        if entries:
            found[stream.decode()] = [
                (stream_id, None if flat is None else dict(zip(flat[::2], flat[1::2], strict=True)))
                for stream_id, flat in entries
            ]
    return found


class SyncFleet:
    def __init__(
        self,
        settings: Settings,
        redis: RedisClient,
        pool: asyncpg.Pool,
        *,
        consumer: str | None = None,
        clock: PeriodClock | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.redis = redis
        self.pool = pool
        self.consumer = consumer or settings.sync_consumer
        self.keys = Keys.for_settings(settings)
        self.scripts = Scripts(redis)
        self.catalog = BoardCatalog(pool, settings)
        self.syncers: dict[str, Syncer] = {}
        self._by_stream: dict[str, str] = {}
        self._turns: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(TURNS)
        self._retry: set[str] = set()
        self._grouped: set[str] = set()
        self._postgres_down = False
        self.pause = Pause("sync")
        self._heartbeat_at = 0.0
        self._active: dict[str, float] = {}  # when each board last had entries
        self._cold_swept = 0.0
        self._heartbeat_reason: str | None = None  # the pause the last record said
        self._stopping = asyncio.Event()
        # set once a sweep of every board found nothing new and nothing is in hand
        self.caught_up = asyncio.Event()
        for config in self.catalog.all():  # the boards known before it is read
            self._by_stream[self._add(config.name).stream] = config.name
        url = settings.redis_url
        # the sweep's own lean connection on one plain Redis
        self._lean = (
            PipelinedConnection(url, SOCKET_TIMEOUT_SECONDS)
            if url and not settings.redis_cluster and supports(url)
            else None
        )

    @property
    def committed_events(self) -> int:
        return sum(syncer.stats.committed_events for syncer in self.syncers.values())

    def stop(self) -> None:
        self._stopping.set()
        for syncer in self.syncers.values():
            syncer.stop()

    def _add(self, name: str) -> Syncer:
        syncer = Syncer(
            self.settings,
            self.redis,
            self.pool,
            board=name,
            consumer=self.consumer,
            scripts=self.scripts,
            clock=self.clock,
        )
        self.syncers[name] = syncer
        return syncer

    def _follow_catalog(self) -> list[Syncer]:
        added = []
        for config in self.catalog.all():
            if config.name not in self.syncers:
                syncer = self._add(config.name)
                self._by_stream[syncer.stream] = config.name
                added.append(syncer)
        if added:
            self._pace_reconciles(added)
        return added

    def _pace_reconciles(self, added: list[Syncer]) -> None:
        """Every board reconciled every interval, or less often with so many boards
        that more than RECONCILES_PER_SECOND would run; new boards' first reconciles
        spread over one interval."""
        interval = max(
            self.settings.reconcile_interval_ms / 1000, len(self.syncers) / RECONCILES_PER_SECOND
        )
        for syncer in self.syncers.values():
            first = random.uniform(0.5, 1.0) * interval if syncer in added else None  # noqa: S311
            syncer.pace_reconcile(interval, first)

    async def _refresh(self) -> None:
        try:
            await self.catalog.refresh()
        except Exception as exc:  # PostgreSQL away: the boards known so far go on
            log.warning("reading the boards failed: %s", exc)

    async def run(self, *, burst: bool = False) -> None:
        await self._refresh()
        self._follow_catalog()
        if burst:
            for syncer in list(self.syncers.values()):
                await syncer.run(burst=True)
            self.caught_up.set()
            return
        log.info("syncing %d boards as consumer %s", len(self.syncers), self.consumer)
        tasks = [
            asyncio.create_task(self._sweep_loop(), name="sync-sweep"),
            asyncio.create_task(self._maintain_loop(), name="sync-maintain"),
            asyncio.create_task(self._reconcile_loop(), name="sync-reconcile"),
            asyncio.create_task(self._partition_loop(), name="sync-partitions"),
        ]
        tidy = (
            asyncio.create_task(
                keep_replica_connections_closed(self.redis), name="sync-replica-connections"
            )
            if self.settings.redis_cluster
            else None
        )
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), REFRESH_SECONDS)
                if self._stopping.is_set():
                    break
                await self._refresh()
                for syncer in self._follow_catalog():
                    log.info("following board %s", syncer.board.name)
        finally:
            self.stop()
            if tidy is not None:
                tidy.cancel()
            await asyncio.gather(*tasks, *filter(None, [tidy]), return_exceptions=True)
            await asyncio.gather(*self._turns.values(), return_exceptions=True)
            if self._lean is not None:
                await self._lean.close()

    # -- reading: the sweep, and each board's turn

    async def _sweep_loop(self) -> None:
        backoff = 0.5
        interval = self.settings.sync_interval_ms / 1000
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                if self._postgres_down:
                    await self._until_postgres_answers()
                await self._sweep()
                self.pause.clear()
                backoff = 0.5
            except Exception as exc:
                self._grouped.clear()  # a stream may be new (Redis lost it): groups again
                self.pause.note(exc)
                await self._heartbeat()
                await self._sleep(backoff * (0.5 + random.random()))  # noqa: S311
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
                continue
            await self._heartbeat()
            await self._sleep(max(0.0, interval - (time.monotonic() - started)))

    async def _sweep(self) -> None:
        for name in sorted(self._retry):
            if name not in self._turns:
                self._retry.discard(name)
                self._start_turn(name, None)
        now = time.monotonic()
        cold_due = now - self._cold_swept >= COLD_SWEEP_SECONDS
        if cold_due:
            self._cold_swept = now
        idle = [
            name
            for name in self.syncers
            if name not in self._turns
            and (cold_due or now - self._active.get(name, -HOT_SECONDS) < HOT_SECONDS)
        ]
        await self._ensure_groups(idle)
        found_any = False
        for chunk in _chunks(idle, SWEEP_STREAMS):
            if self._stopping.is_set() or self._postgres_down:
                return
            try:
                found = await self._read_new(chunk)
            except Exception:
                self._retry.update(chunk)  # the read may have delivered what it lost
                raise
            found_any = found_any or bool(found)
            for stream, entries in found.items():
                name = self._by_stream[stream]
                if name in self._turns:  # cannot happen: the chunk held idle boards only
                    self._retry.add(name)
                    continue
                self._start_turn(name, entries)
        if cold_due and not found_any and not self._turns and not self._retry:
            self.caught_up.set()

    async def _read_new(self, names: list[str]) -> dict[str, list[Entry]]:
        """The new entries of these boards' streams, delivered to this consumer."""
        streams: dict[Any, Any] = {self.syncers[name].stream: ">" for name in names}
        async with redis_errors():
            if self._lean is not None:  # hiredis packs the long command in C
                reply = await self._lean.execute(
                    "XREADGROUP",
                    "GROUP",
                    GROUP,
                    self.consumer,
                    "COUNT",
                    SWEEP_COUNT,
                    "STREAMS",
                    *streams,
                    *streams.values(),
                )
                return _from_raw(reply)
            if not self.settings.redis_cluster:
                reply = await self.redis.xreadgroup(
                    GROUP, self.consumer, streams, count=SWEEP_COUNT
                )
                return _by_stream(reply)
            pipe = self.redis.pipeline(transaction=False)
            for stream in streams:
                pipe.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=SWEEP_COUNT)
            found: dict[str, list[Entry]] = {}
            for reply in await pipe.execute():
                found.update(_by_stream(reply))
            return found

    async def _ensure_groups(self, names: list[str]) -> None:
        """Every stream a sweep reads has the consumer group (a read naming one without
        it fails whole)."""
        missing = [name for name in names if name not in self._grouped]
        for chunk in _chunks(missing, SWEEP_STREAMS):
            async with redis_errors():
                pipe = self.redis.pipeline(transaction=False)
                for name in chunk:
                    pipe.xgroup_create(self.syncers[name].stream, GROUP, id="0", mkstream=True)
                replies = await pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, ResponseError) and "BUSYGROUP" not in str(reply):
                    raise reply
            self._grouped.update(chunk)

    def _start_turn(self, name: str, entries: list[Entry] | None) -> None:
        self._active[name] = time.monotonic()
        self._turns[name] = asyncio.create_task(self._turn(name, entries), name=f"sync-{name}")

    async def _turn(self, name: str, entries: list[Entry] | None) -> None:
        syncer = self.syncers[name]
        try:
            async with self._slots:
                await syncer.process(entries, max_batches=MAX_BATCHES)
        except Exception as exc:
            syncer.failed(exc)  # what it read stays pending: the board is retried
            self._retry.add(name)
            if isinstance(exc, DatabaseUnavailable):
                self._postgres_down = True
        finally:
            self._turns.pop(name, None)

    async def _until_postgres_answers(self) -> None:
        self.pause.note(DatabaseUnavailable())
        await until_postgres_answers(self.pool, self._stopping, self._heartbeat)
        self._postgres_down = False

    # -- visiting: checks, floods, reconciles, health

    async def _maintain_loop(self) -> None:
        while not self._stopping.is_set():
            names = list(self.syncers)
            pause = max(1.0 / len(names), 1.0 / MAINTAIN_PER_SECOND)
            for name in names:
                if self._stopping.is_set():
                    return
                started = time.monotonic()
                pending = not self._postgres_down and await self._visit(self.syncers[name])
                if pending and name not in self._turns:
                    self._retry.add(name)
                await self._sleep(max(0.0, pause - (time.monotonic() - started)))

    async def _reconcile_loop(self) -> None:
        """Reconciles run in a task of their own, one at a time and at most
        RECONCILES_PER_SECOND: a long one (a large board's compare takes seconds) holds
        up no board's checks, flood flushes or health records."""
        while not self._stopping.is_set():
            for syncer in list(self.syncers.values()):
                if self._stopping.is_set():
                    return
                if self._postgres_down or not syncer.reconcile_due():
                    continue
                started = time.monotonic()
                try:
                    await syncer.reconcile_if_due()
                except ServiceUnavailable as exc:
                    log.debug("board %s: reconcile skipped: %s", syncer.board.name, exc.message)
                except Exception:
                    log.exception("board %s: reconcile failed", syncer.board.name)
                pause = 1.0 / RECONCILES_PER_SECOND - (time.monotonic() - started)
                await self._sleep(max(0.0, pause))
            await self._sleep(RECONCILE_LOOK_SECONDS)

    async def _partition_loop(self) -> None:
        """The coming months' partitions made ahead, and the audit trail's past its
        retention dropped: at start, then hourly."""
        while not self._stopping.is_set():
            try:
                await keep_months(
                    self.pool, datetime.now(UTC), self.settings.audit_retention_months
                )
            except Exception as exc:  # rows land in the default partition meanwhile
                log.warning("looking after the monthly partitions failed: %s", exc)
                await self._sleep(PARTITION_RETRY_SECONDS)
                continue
            await self._sleep(PARTITION_SECONDS)

    async def _visit(self, syncer: Syncer) -> bool:
        """Whether the board has entries pending (its next sweep retries them)."""
        try:
            return await syncer.maintain(reconcile=False)
        except ServiceUnavailable as exc:
            log.debug("board %s: visit skipped: %s", syncer.board.name, exc.message)
        except Exception:
            log.exception("board %s: visit failed", syncer.board.name)
        return False

    # -- the fleet's own state

    async def _heartbeat(self) -> None:
        """The fleet's record: alive, how many boards, and what it waits for."""
        now = time.monotonic()
        changed = self.pause.reason != self._heartbeat_reason
        if now - self._heartbeat_at < HEARTBEAT_SECONDS and not changed:
            return
        self._heartbeat_at, self._heartbeat_reason = now, self.pause.reason
        record = {
            "consumer": self.consumer,
            "boards": len(self.syncers),
            "turns": len(self._turns),
            "paused": self.pause.reason,
            "paused_since_ms": self.pause.since_ms,
            "updated_ms": int(time.time() * 1000),
        }
        with contextlib.suppress(ServiceUnavailable):
            async with redis_errors():
                await self.redis.set(
                    self.keys.sync_fleet(), json.dumps(record), ex=HEALTH_TTL_SECONDS
                )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
