"""The write-behind syncer as the API servers see it: its backlog in the stream, its
dead letters and the health record it keeps refreshing, and what of that needs a
person. A syncer that has not reported for a few of its rounds, or a board's backlog past
`SCOREBOARD_SYNC_MAX_BACKLOG`, makes `/health/detailed` say `degraded`; each server logs
when the syncer process stops or starts reporting."""

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
from scoreboard.storage.keys import Keys
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
_SUMMED = ("rebuilds", "reconciles", "repairs", "rollbacks", "committed_events", "transactions")


async def read_sync_status(redis: RedisClient, keys: Keys, board: str) -> dict[str, Any]:
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
    status: dict[str, Any] = {
        **_process_status(fleet_raw, record),
        "lag": lag,
        "pending": int(group.get("pending", 0)),
        "dead_letters": dead,
        "last_commit": iso_ms(record.get("last_commit_ms")),
    }
    status.update({name: record.get(name) for name in _RECORD_FIELDS})
    return status


async def read_syncer_status(redis: RedisClient, keys: Keys) -> dict[str, Any]:
    """How the syncer process reports (one read, whatever the number of boards)."""
    try:
        fleet_raw = await redis.get(keys.sync_fleet())
    except Exception as exc:
        return {"status": "unknown", "error": type(exc).__name__}
    return _process_status(fleet_raw, {})


def _process_status(fleet_raw: bytes | str | None, record: dict[str, Any]) -> dict[str, Any]:
    """The syncer's state from its process's record (refreshed every second) and, when
    given, a board's own record (a syncer of that board alone writes only that)."""
    fleet = json.loads(fleet_raw) if fleet_raw else {}
    state = "running" if record or fleet else "not running"
    paused = next((r for r in (fleet, record) if r.get("paused")), None)
    if paused is not None:
        state = f"{paused['paused']} since {iso_ms(paused.get('paused_since_ms'))}"
    reported = max(record.get("updated_ms") or 0, fleet.get("updated_ms") or 0)
    return {"status": state, "reported_ms": reported or None, "boards": fleet.get("boards")}


def summarise(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """The syncer over every board: its process's state, the boards' backlogs summed."""
    read = [status for status in statuses if status.get("status") != "unknown"]
    if not read:
        return statuses[0] if statuses else {"status": "unknown", "error": "no board"}
    states = {status["status"] for status in read}
    unusual = sorted(states - {"running", "not running"})
    state = unusual[0] if unusual else "running" if "running" in states else "not running"
    commits = [status["last_commit"] for status in read if status.get("last_commit")]
    return {
        "status": state,
        "lag": sum(int(status.get("lag") or 0) for status in read),
        "pending": sum(int(status.get("pending") or 0) for status in read),
        "dead_letters": sum(int(status.get("dead_letters") or 0) for status in read),
        "last_commit": max(commits, default=None),  # ISO instants sort as text
        "reported_ms": max((status.get("reported_ms") or 0 for status in read), default=0) or None,
        "boards": read[0].get("boards"),
        **{name: sum(int(status.get(name) or 0) for status in read) for name in _SUMMED},
    }


def sync_problems(summary: dict[str, Any], settings: Settings) -> list[str]:
    """What about the syncer process needs a person (empty: nothing)."""
    if settings.embedded or summary["status"] == "unknown":
        return []  # embedded: it runs in this process; unknown: Redis is reported
    reported = summary.get("reported_ms")
    stale_after = max(5_000, 3 * settings.sync_block_ms + 2 * settings.sync_interval_ms)
    if reported is None or time.time() * 1000 - reported > stale_after:
        return ["no syncer has reported recently: nothing reaches PostgreSQL"]
    if summary["status"] not in ("running", "not running"):
        return [f"the syncer is {summary['status']}: nothing reaches PostgreSQL"]
    return []


def backlog_problem(board: str, status: dict[str, Any], settings: Settings) -> str | None:
    """A board whose events wait for the syncer past `SCOREBOARD_SYNC_MAX_BACKLOG`."""
    backlog = int(status.get("lag") or 0) + int(status.get("pending") or 0)
    if backlog <= settings.sync_max_backlog:
        return None
    limit = settings.sync_max_backlog
    return f"board {board}: the syncer is {backlog} events behind (more than {limit})"


def all_problems(statuses: dict[str, dict[str, Any]], settings: Settings) -> list[str]:
    """The syncer's troubles, then each board's backlog."""
    problems = sync_problems(summarise(list(statuses.values())), settings)
    for board, status in sorted(statuses.items()):
        backlog = backlog_problem(board, status, settings)
        if backlog is not None:
            problems.append(backlog)
    return problems


class SyncWatch:
    """Logs, once per change, when the syncer process starts or stops needing a person
    (a board's backlog is `/health/detailed`'s and `/metrics`' to show: reading every
    board every few seconds would cost as much as the syncer itself)."""

    def __init__(self, redis: RedisClient, keys: Keys, settings: Settings) -> None:
        self._redis, self._keys, self._settings = redis, keys, settings
        self._problems: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> list[str]:
        status = await read_syncer_status(self._redis, self._keys)
        problems = sync_problems(status, self._settings)
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
