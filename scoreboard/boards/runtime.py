"""What a process holds per board of the catalogue: the board's keys, its reads and the
guard that builds it when Redis does not hold it (a new board, or one Redis lost).

A board whose update channel the process follows (see `scoreboard.live.channels`) has
its top N kept in memory; other reads go to Redis, one read script each, and so does
every period ranking (the current period is named from the clock, as the scripts
name it from Redis TIME).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import asyncpg

from scoreboard.boards.catalogue import BoardCatalog, BoardConfig
from scoreboard.boards.guard import BoardGuard, GuardRounds
from scoreboard.boards.leaderboard import Leaderboard
from scoreboard.boards.rebuild import REAL_CLOCK, PeriodClock
from scoreboard.core.errors import BoardNotFound, NotFound
from scoreboard.core.periods import ALL_TIME, Period, period_at
from scoreboard.storage.keys import BoardKeys, Keys
from scoreboard.storage.redis_client import RedisClient
from scoreboard.storage.scripts import BoardPage, PlayerPosition, Scripts

log = logging.getLogger("scoreboard.boards")


@dataclass
class BoardRuntime:
    keys: BoardKeys
    leaderboard: Leaderboard
    guard: BoardGuard


class BoardRuntimes:
    def __init__(
        self,
        *,
        redis: RedisClient,
        pool: asyncpg.Pool,
        scripts: Scripts,
        keys: Keys,
        catalog: BoardCatalog,
        top_n: int,
        clock: PeriodClock = REAL_CLOCK,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._scripts = scripts
        self._keys = keys
        self._top_n = top_n
        self.catalog = catalog
        self._runtimes: dict[str, BoardRuntime] = {}
        self.guards = GuardRounds()
        self.clock = clock
        self.follow_catalog()  # the boards known before the catalogue is read
        catalog.on_change(self.follow_catalog)

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock.offset_ms

    def follow_catalog(self) -> None:
        """A runtime (its guard in the rounds) for every board of the catalogue."""
        for config in self.catalog.all():
            if config.name not in self._runtimes:
                self._runtimes[config.name] = runtime = self._new(config.name)
                self.guards.add(runtime.guard)

    def _new(self, name: str) -> BoardRuntime:
        board = self._keys.board(name)
        return BoardRuntime(
            board,
            Leaderboard(self._scripts, board, self._top_n),
            BoardGuard(self._redis, self._pool, self._scripts, board, clock=self.clock),
        )

    def start(self) -> None:
        """Every board's guard, in rounds."""
        self.follow_catalog()
        self.guards.start()

    async def stop(self) -> None:
        await self.guards.stop()

    def all(self) -> list[tuple[str, BoardRuntime]]:
        """Every board this process holds, by name."""
        return sorted(self._runtimes.items())

    def all_keys(self) -> list[BoardKeys]:
        return [runtime.keys for runtime in self._runtimes.values()]

    def runtime(self, name: str) -> BoardRuntime:
        """A board the process holds (the catalogue's boards, as last read)."""
        runtime = self._runtimes.get(name)
        if runtime is None:
            raise BoardNotFound()
        return runtime

    async def board(self, name: str) -> tuple[BoardConfig, BoardRuntime]:
        config = await self.catalog.find(name)
        runtime = self._runtimes.get(name)
        if runtime is None:
            self.follow_catalog()
            runtime = self._runtimes.get(name)
        if runtime is None:
            raise BoardNotFound()
        return config, runtime

    async def ready(self, name: str) -> BoardRuntime:
        """The board's runtime, its guard run once now (a board just created)."""
        _, runtime = await self.board(name)
        await runtime.guard.check()
        return runtime

    def period(self, config: BoardConfig, kind: str) -> Period | None:
        """The current period of this kind on the board; None for the all-time ranking.
        A kind the board does not have is no ranking of it: 404."""
        if kind == ALL_TIME:
            return None
        if kind not in config.periods:
            raise NotFound(
                "This board has no such ranking: period must be 'all' or one of its periods",
                details={"field": "period", "allowed": [ALL_TIME, *config.periods]},
            )
        return period_at(kind, self.now_ms())

    async def page(
        self, runtime: BoardRuntime, period: Period | None, offset: int, limit: int
    ) -> BoardPage:
        if period is None:
            return await runtime.leaderboard.page(offset, limit)
        ranking, players = runtime.keys.period_ranking(period.id)
        return await self._scripts.read_range(
            runtime.keys, offset, offset + limit - 1, ranking=(ranking, players)
        )

    async def around(
        self, runtime: BoardRuntime, period: Period | None, user_id: str, radius: int
    ) -> PlayerPosition:
        if period is None:
            return await runtime.leaderboard.around(user_id, radius)
        return await self._scripts.read_around(
            runtime.keys, user_id, radius, ranking=runtime.keys.period_ranking(period.id)
        )
