"""Every board as operators see it, for `/health/detailed` and `/metrics`: whether it is
whole in Redis, its players, its guard's counts, and how far the syncer is with it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from scoreboard.api.services import Services
from scoreboard.boards.runtime import BoardRuntime
from scoreboard.storage.redis_client import as_text
from scoreboard.sync.status import read_sync_status

# boards read at once per scrape (each read is a few round trips)
CONCURRENT_READS = 16


@dataclass(frozen=True)
class BoardStatus:
    name: str
    ready: bool  # this process's guard found the board whole at its last look
    epoch: str | None  # the build in Redis now (None: lost or being rebuilt)
    players: int | None
    lost: int  # times this process found it lost
    rebuilt: int  # rebuilds this process ran
    sync: dict[str, Any]


async def _one(svc: Services, name: str, runtime: BoardRuntime) -> BoardStatus:
    sync = await read_sync_status(svc.redis, svc.keys, name)
    try:
        epoch, players = await svc.redis.hmget(runtime.keys.state, ["epoch", "players"])
    except Exception:
        epoch = players = None
    guard = runtime.guard
    return BoardStatus(
        name=name,
        ready=guard.healthy,
        epoch=as_text(epoch) if epoch is not None else None,
        players=int(players) if players is not None else None,
        lost=guard.stats.lost,
        rebuilt=guard.stats.rebuilt,
        sync=sync,
    )


async def board_statuses(svc: Services) -> list[BoardStatus]:
    """Every board this process holds, by name."""
    gate = asyncio.Semaphore(CONCURRENT_READS)

    async def read(name: str, runtime: BoardRuntime) -> BoardStatus:
        async with gate:
            return await _one(svc, name, runtime)

    return list(await asyncio.gather(*(read(n, r) for n, r in svc.boards.all())))
