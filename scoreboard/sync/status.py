"""The write-behind syncer as the API servers see it: its backlog in the stream, its
dead letters and the health record it keeps refreshing, and what of that needs a
person. A syncer that has not reported for a few of its rounds, or a backlog past
`SCOREBOARD_SYNC_MAX_BACKLOG`, makes `/health/detailed` say `degraded`, and each server
logs the change once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from scoreboard.boards.leaderboard import iso_ms
from scoreboard.core.settings import Settings
from scoreboard.core.tasks import cancel
from scoreboard.storage.keys import DEFAULT_BOARD, Keys
from scoreboard.storage.redis_client import RedisClient, consumer_lag

log = logging.getLogger("scoreboard.sync_status")

WATCH_SECONDS = 5.0
_RECORD_FIELDS = (
    "consumer",
    "rebuilds",
    "reconciles",
    "repairs",
    "rollbacks",
    "committed_events",
    "transactions",
    "commit_seconds",
    "last_batch_events",
)


async def read_sync_status(
    redis: RedisClient, keys: Keys, board: str = DEFAULT_BOARD
) -> dict[str, Any]:
    """How far the syncer is with `board`, and how the syncer process reports."""
    try:
        events = keys.events(board)
        exists = await redis.exists(events)
        groups = await redis.xinfo_groups(events) if exists else []
        group = next((g for g in groups if g["name"] in (b"sync", "sync")), {})
        lag = await consumer_lag(redis, events, group) if exists else 0
        dead = await redis.xlen(keys.dead_letters(board))
        raw = await redis.get(keys.sync_health(board))
        fleet_raw = await redis.get(keys.sync_fleet())
    except Exception as exc:
        return {"status": "unknown", "error": type(exc).__name__}
    record = json.loads(raw) if raw else {}
    fleet = json.loads(fleet_raw) if fleet_raw else {}  # the process, every second
    state = "running" if record or fleet else "not running"
    paused = next((r for r in (fleet, record) if r.get("paused")), None)
    if paused is not None:
        state = f"{paused['paused']} since {iso_ms(paused.get('paused_since_ms'))}"
    reported = max(record.get("updated_ms") or 0, fleet.get("updated_ms") or 0)
    status: dict[str, Any] = {
        "status": state,
        "lag": lag,
        "pending": int(group.get("pending", 0)),
        "dead_letters": dead,
        "last_commit": iso_ms(record.get("last_commit_ms")),
        "reported_ms": reported or None,
        "boards": fleet.get("boards"),
    }
    status.update({name: record.get(name) for name in _RECORD_FIELDS})
    return status


def sync_problems(status: dict[str, Any], settings: Settings) -> list[str]:
    """What about the syncer needs a person (empty: nothing)."""
    if settings.embedded or status["status"] == "unknown":
        return []  # embedded: it runs in this process; unknown: Redis is reported
    reported = status.get("reported_ms")
    stale_after = max(5_000, 3 * settings.sync_block_ms + 2 * settings.sync_interval_ms)
    if reported is None or time.time() * 1000 - reported > stale_after:
        return ["no syncer has reported recently: nothing reaches PostgreSQL"]
    if status["status"] not in ("running", "not running"):
        return [f"the syncer is {status['status']}: nothing reaches PostgreSQL"]
    backlog = int(status.get("lag") or 0) + int(status.get("pending") or 0)
    if backlog > settings.sync_max_backlog:
        return [f"the syncer is {backlog} events behind (more than {settings.sync_max_backlog})"]
    return []


class SyncWatch:
    """Logs, once per change, when the syncer starts or stops needing a person."""

    def __init__(self, redis: RedisClient, keys: Keys, settings: Settings) -> None:
        self._redis, self._keys, self._settings = redis, keys, settings
        self._problems: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> list[str]:
        problems = sync_problems(await read_sync_status(self._redis, self._keys), self._settings)
        if problems != self._problems:
            for problem in problems:
                log.warning("degraded: %s", problem)
            if not problems:
                log.info("the syncer reports in again")
        self._problems = problems
        return problems

    async def _run(self) -> None:
        await asyncio.sleep(WATCH_SECONDS)  # a syncer starting beside us gets its turn
        while True:
            with contextlib.suppress(Exception):
                await self.check()
            await asyncio.sleep(WATCH_SECONDS)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sync-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
