"""`/metrics`: Prometheus text for the numbers operators alert on (scoreboard.core.metrics)."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoreboard.api.common import services
from scoreboard.api.services import Services
from scoreboard.core.errors import BoardUnavailable
from scoreboard.core.metrics import Metric, counter, gauge, render, summary
from scoreboard.sync.status import read_sync_status

BOARD = {"board": "global"}
INFO_SECONDS = 0.5
_SYNC_GAUGES = (
    ("scoreboard_sync_lag", "Board events not yet read by the syncer", "lag"),
    ("scoreboard_sync_pending", "Board events read by the syncer and not yet committed", "pending"),
    ("scoreboard_sync_dead_letters", "Board events the syncer gave up on", "dead_letters"),
)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def _read_now(svc: Services) -> list[Metric]:
    """What this scrape reads: the syncer's record in Redis and this process's state."""
    sync = await read_sync_status(svc.redis, svc.keys)
    families = [
        gauge(name, text, value, BOARD)
        for name, text, field in _SYNC_GAUGES
        if (value := _number(sync.get(field))) is not None
    ]
    hub, guard = svc.hub, svc.guard
    families += [
        gauge(
            "scoreboard_sync_running",
            "1 while the syncer reports in",
            float(sync.get("status") == "running"),
            BOARD,
        ),
        gauge(
            "scoreboard_feed_connected",
            "1 while this process follows the board's updates",
            float(svc.feed.connected),
            BOARD,
        ),
        gauge(
            "scoreboard_live_clients",
            "Live-feed clients of this process",
            hub.subscriber_count,
            BOARD,
        ),
        counter(
            "scoreboard_live_broadcasts",
            "Board updates this process broadcast to its live-feed clients",
            {("global",): hub.sent},
            ["board"],
        ),
        counter(
            "scoreboard_live_direct_writes",
            "Broadcast messages written straight to a WebSocket client's socket",
            {("global",): hub.written_directly},
            ["board"],
        ),
        gauge(
            "scoreboard_board_ready",
            "1 while the board is whole in Redis",
            float(guard.healthy),
            BOARD,
        ),
        counter(
            "scoreboard_board_lost",
            "Times this process found the board lost from Redis",
            {("global",): guard.stats.lost},
            ["board"],
        ),
        counter(
            "scoreboard_board_rebuilds",
            "Rebuilds of the board from PostgreSQL that this process ran",
            {("global",): guard.stats.rebuilt},
            ["board"],
        ),
    ]
    families += _commit_families(sync)
    families += await _redis_families(svc)
    rollbacks = _number(sync.get("rollbacks"))
    if rollbacks is not None:
        families.append(
            counter(
                "scoreboard_sync_rollbacks",
                "Times the syncer saw the update sequence go back"
                " (Redis lost acknowledged updates)",
                {("global",): rollbacks},
                ["board"],
            )
        )
    repairs = sync.get("repairs") or {}
    if isinstance(repairs, dict) and repairs:
        families.append(
            counter(
                "scoreboard_board_repairs",
                "Players the syncer's reconciler repaired, by difference",
                {("global", kind): count for kind, count in sorted(repairs.items())},
                ["board", "kind"],
            )
        )
    try:
        players = (await svc.leaderboard.top()).total_players
    except BoardUnavailable:
        pass
    else:
        families.append(
            gauge("scoreboard_players", "Players with a score on the board", players, BOARD)
        )
    return families


async def _redis_families(svc: Services) -> list[Metric]:
    """Whether Redis keeps an append-only file (nothing when it cannot be asked: a
    stand-in without INFO, or Redis down, which the other families show)."""
    try:
        async with asyncio.timeout(INFO_SECONDS):
            info = await svc.redis.info("persistence")
    except (RedisError, TimeoutError):
        return []
    enabled = float(bool(int(info.get("aof_enabled", 0))))
    return [gauge("scoreboard_redis_aof_enabled", "1 while Redis keeps an AOF", enabled, {})]


def _commit_families(sync: dict[str, object]) -> list[Metric]:
    """The syncer's commits: events and transactions (their ratio is the mean batch),
    the time they took, and the last batch's size."""
    events, commits = _number(sync.get("committed_events")), _number(sync.get("transactions"))
    seconds, last = _number(sync.get("commit_seconds")), _number(sync.get("last_batch_events"))
    if events is None or commits is None or seconds is None or last is None:
        return []
    return [
        counter(
            "scoreboard_sync_committed_events",
            "Board events the syncer committed to PostgreSQL",
            {("global",): events},
            ["board"],
        ),
        summary(
            "scoreboard_sync_commit_duration_seconds",
            "Time the syncer's PostgreSQL transactions took (count: transactions)",
            int(commits),
            seconds,
            BOARD,
        ),
        gauge(
            "scoreboard_sync_last_batch_events", "Events in the last committed batch", last, BOARD
        ),
    ]


async def metrics(request: Request) -> Response:
    body = render(await _read_now(services(request)))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [Route("/metrics", metrics, methods=["GET"])]
