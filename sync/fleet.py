"""The syncer process: one `Syncer` per board of the catalogue, each following its own
board's stream (and rebuilding and reconciling its board), started as boards appear.
Boards never mix: every transaction holds one board's events."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from scoreboard.boards import REFRESH_SECONDS, BoardCatalog
from scoreboard.keys import DEFAULT_BOARD
from scoreboard.redis_store import RedisClient
from scoreboard.settings import Settings
from scoreboard.sync.syncer import Syncer

log = logging.getLogger("scoreboard.sync")


class SyncFleet:
    def __init__(
        self,
        settings: Settings,
        redis: RedisClient,
        pool: asyncpg.Pool,
        *,
        consumer: str | None = None,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.pool = pool
        self._consumer = consumer
        self.catalog = BoardCatalog(pool, settings)
        self.main = Syncer(settings, redis, pool, consumer=consumer)
        self.syncers: dict[str, Syncer] = {DEFAULT_BOARD: self.main}
        self._stopping = asyncio.Event()

    @property
    def committed_events(self) -> int:
        return sum(syncer.stats.committed_events for syncer in self.syncers.values())

    def stop(self) -> None:
        self._stopping.set()
        for syncer in self.syncers.values():
            syncer.stop()

    def _follow_catalog(self) -> list[Syncer]:
        added = []
        for config in self.catalog.all():
            if config.name not in self.syncers:
                syncer = Syncer(
                    self.settings, self.redis, self.pool, board=config.name, consumer=self._consumer
                )
                self.syncers[config.name] = syncer
                added.append(syncer)
        return added

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
            return
        tasks = [asyncio.create_task(s.run(), name=f"sync-{n}") for n, s in self.syncers.items()]
        try:
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), REFRESH_SECONDS)
                if self._stopping.is_set():
                    break
                await self._refresh()
                for syncer in self._follow_catalog():
                    log.info("following board %s", syncer.board.name)
                    tasks.append(
                        asyncio.create_task(syncer.run(), name=f"sync-{syncer.board.name}")
                    )
        finally:
            self.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
