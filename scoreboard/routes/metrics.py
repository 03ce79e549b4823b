"""`/metrics`: Prometheus text for the numbers operators alert on (scoreboard.metrics)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoreboard.errors import BoardUnavailable
from scoreboard.metrics import Metric, counter, gauge, render
from scoreboard.routes.common import services
from scoreboard.services import Services
from scoreboard.sync_status import read_sync_status

BOARD = {"board": "global"}
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


async def metrics(request: Request) -> Response:
    body = render(await _read_now(services(request)))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [Route("/metrics", metrics, methods=["GET"])]
