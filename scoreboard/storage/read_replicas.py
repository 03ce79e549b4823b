"""Reads that may be a moment stale (closed periods and seasons, the review queue, a
player's history, the audit trail) go to the PostgreSQL read replicas `DATABASE_READ_URL`
names; every write, and every read a write or a permission depends on, stays on the
primary.

Each second the primary's WAL position is noted and every replica asked how far it has
replayed. A replica's lag is the time since the newest noted position it has replayed
(so an idle primary does not make a healthy replica look behind), and its byte lag the
WAL between. A replica more than `SCOREBOARD_DB_READ_MAX_LAG_SECONDS` behind, or one
that does not answer, is passed over: its reads go to the primary, with one warning
when it leaves and one when it is back. A read that fails on a replica is read again on
the primary at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from scoreboard.core.errors import DatabaseUnavailable
from scoreboard.storage.database import create_pool, db_errors
from scoreboard.storage.preflight import redacted

log = logging.getLogger("scoreboard.read_replicas")

CHECK_SECONDS = 1.0
CHECK_TIMEOUT_SECONDS = 2.0
# a read a replica cannot give: unreachable, or cancelled by replay (SQLSTATE 40001)
_REPLICA_FAILURES = (DatabaseUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError)

T = TypeVar("T")
Work = Callable[[asyncpg.Connection], Awaitable[T]]


def parse_lsn(text: str) -> int:
    """A WAL position (`16/B374D848`) as a byte offset."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass
class ReplicaState:
    """What the last check found: `serving`, `lagging`, `down`, or `unchecked`."""

    url: str
    state: str = "unchecked"
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    error: str | None = None

    def problem(self, max_lag: float) -> str | None:
        if self.state == "down":
            return (
                f"PostgreSQL read replica {self.url}: not answering ({self.error}); reads go"
                " to the primary"
            )
        if self.state == "lagging":
            return (
                f"PostgreSQL read replica {self.url}: {self.lag_seconds:.1f} s behind (most"
                f" {max_lag:g} s); reads go to the primary"
            )
        return None

    def as_dict(self) -> dict[str, Any]:
        lag = None if self.lag_seconds is None else round(self.lag_seconds, 3)
        shown: dict[str, Any] = {"url": self.url, "state": self.state, "lag_seconds": lag}
        shown["lag_bytes"] = self.lag_bytes
        if self.error is not None:
            shown["error"] = self.error
        return shown


class Replica:
    def __init__(self, dsn: str, pool: asyncpg.Pool) -> None:
        self.dsn = dsn
        self.pool = pool
        self.status = ReplicaState(redacted(dsn))

    @property
    def serving(self) -> bool:
        return self.status.state == "serving"


class ReadPools:
    """The primary's pool and the replicas', with the choice between them."""

    def __init__(
        self, primary: asyncpg.Pool, replicas: list[Replica], max_lag_seconds: float
    ) -> None:
        self.primary = primary
        self.replicas = replicas
        self.max_lag_seconds = max_lag_seconds
        self._turn = itertools.count()
        # (monotonic time, primary WAL position) of recent checks, oldest first
        self._positions: deque[tuple[float, int]] = deque()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, primary: asyncpg.Pool, dsns: tuple[str, ...], *, size: int, max_lag_seconds: float
    ) -> ReadPools:
        replicas = []
        for dsn in dsns:
            # (no connection is made until the first check: a replica that is down
            # at start-up is only passed over)
            replicas.append(Replica(dsn, await create_pool(dsn, size=size)))
        reads = cls(primary, replicas, max_lag_seconds)
        if replicas:
            await reads.check()
        return reads

    def start(self) -> None:
        if self.replicas and self._task is None:
            self._task = asyncio.create_task(self._keep_checking(), name="read-replicas")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for replica in self.replicas:
            await replica.pool.close()

    def states(self) -> list[ReplicaState]:
        return [replica.status for replica in self.replicas]

    def problems(self) -> list[str]:
        return [p for r in self.replicas if (p := r.status.problem(self.max_lag_seconds))]

    async def run(self, work: Work[T]) -> T:
        """`work(connection)` on a serving replica (in turn), else on the primary; a
        replica that fails it is passed over until its next good check and the work
        done again on the primary."""
        replica = self._choose()
        if replica is not None:
            try:
                async with db_errors(), replica.pool.acquire() as conn:
                    return await work(conn)
            except _REPLICA_FAILURES as exc:
                self._set(replica, "down", error=type(exc).__name__)
        async with db_errors(), self.primary.acquire() as conn:
            return await work(conn)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async def work(conn: asyncpg.Connection) -> list[asyncpg.Record]:
            rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
            return rows

        return await self.run(work)

    def _choose(self) -> Replica | None:
        serving = [replica for replica in self.replicas if replica.serving]
        if not serving:
            return None
        return serving[next(self._turn) % len(serving)]

    async def _keep_checking(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            await self.check()

    async def check(self) -> None:
        """One round: note the primary's position, then ask every replica."""
        now = time.monotonic()
        try:
            text = await self.primary.fetchval(
                "SELECT pg_current_wal_lsn()::text", timeout=CHECK_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return  # the primary's own outage shows elsewhere; replicas keep their state
        position = parse_lsn(text)
        self._positions.append((now, position))
        horizon = now - max(60.0, 4 * self.max_lag_seconds)
        while len(self._positions) > 1 and self._positions[0][0] < horizon:
            self._positions.popleft()
        await asyncio.gather(*(self._check(replica, now, position) for replica in self.replicas))

    async def _check(self, replica: Replica, now: float, position: int) -> None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                replayed = await replica.pool.fetchval(
                    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
                    " ELSE pg_current_wal_lsn() END::text"
                )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._set(replica, "down", error=type(exc).__name__)
            return
        replayed_at = parse_lsn(replayed) if replayed else 0
        lag_bytes = max(0, position - replayed_at)
        lag = self._lag_seconds(now, replayed_at)
        state = "serving" if lag <= self.max_lag_seconds else "lagging"
        self._set(replica, state, lag_seconds=lag, lag_bytes=lag_bytes)

    def _lag_seconds(self, now: float, replayed_at: int) -> float:
        """Since the newest noted primary position the replica has replayed; when it has
        replayed none of them, at least since the oldest."""
        for noted_at, position in reversed(self._positions):
            if position <= replayed_at:
                return now - noted_at
        return now - self._positions[0][0]

    def _set(
        self,
        replica: Replica,
        state: str,
        *,
        lag_seconds: float | None = None,
        lag_bytes: int | None = None,
        error: str | None = None,
    ) -> None:
        before = replica.status.state
        replica.status = ReplicaState(replica.status.url, state, lag_seconds, lag_bytes, error)
        if state == before:
            return
        if state == "serving":
            if before != "unchecked":
                log.warning("PostgreSQL read replica %s: serving reads again", replica.status.url)
        else:
            log.warning("%s", replica.status.problem(self.max_lag_seconds))
