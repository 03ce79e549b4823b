"""`/metrics`: Prometheus text for the numbers operators alert on."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from scoreboard.errors import BoardUnavailable
from scoreboard.routes.common import services
from scoreboard.routes.health import sync_status

_GAUGES = (
    ("scoreboard_sync_lag", "Board events not yet read by the syncer", "lag"),
    ("scoreboard_sync_pending", "Board events read by the syncer and not yet committed", "pending"),
    ("scoreboard_sync_dead_letters", "Board events the syncer gave up on", "dead_letters"),
)


async def metrics(request: Request) -> Response:
    svc = services(request)
    sync = await sync_status(svc)
    lines: list[str] = []

    def metric(name: str, help_text: str, value: object, kind: str = "gauge") -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            lines.extend(
                (
                    f"# HELP {name} {help_text}",
                    f"# TYPE {name} {kind}",
                    f'{name}{{board="global"}} {value}',
                )
            )

    for name, help_text, field in _GAUGES:
        metric(name, help_text, sync.get(field))
    metric(
        "scoreboard_sync_running",
        "1 while the syncer reports in",
        int(sync.get("status") == "running"),
    )
    metric(
        "scoreboard_feed_connected",
        "1 while this process follows the board's updates",
        int(svc.feed.connected),
    )
    metric("scoreboard_live_clients", "Live-feed clients of this process", svc.hub.subscriber_count)
    metric(
        "scoreboard_live_broadcasts_total",
        "Board updates this process broadcast to its live-feed clients",
        svc.hub.sent,
        "counter",
    )
    metric(
        "scoreboard_live_direct_writes_total",
        "Broadcast messages written straight to a WebSocket client's socket",
        svc.hub.written_directly,
        "counter",
    )
    guard = svc.guard
    metric("scoreboard_board_ready", "1 while the board is whole in Redis", int(guard.healthy))
    metric(
        "scoreboard_board_lost_total",
        "Times this process found the board lost from Redis",
        guard.stats.lost,
        "counter",
    )
    metric(
        "scoreboard_board_rebuilds_total",
        "Rebuilds of the board from PostgreSQL that this process ran",
        guard.stats.rebuilt,
        "counter",
    )
    metric(
        "scoreboard_sync_rollbacks_total",
        "Times the syncer saw the update sequence go back (Redis lost acknowledged updates)",
        sync.get("rollbacks"),
        "counter",
    )
    repairs = sync.get("repairs") or {}
    if isinstance(repairs, dict) and repairs:
        name = "scoreboard_board_repairs_total"
        lines.append(f"# HELP {name} Players the syncer's reconciler repaired, by difference")
        lines.append(f"# TYPE {name} counter")
        lines.extend(
            f'{name}{{board="global",kind="{kind}"}} {int(count)}'
            for kind, count in sorted(repairs.items())
        )
    try:
        snapshot = await svc.leaderboard.top()
    except BoardUnavailable:
        pass
    else:
        metric("scoreboard_players", "Players with a score on the board", snapshot.total_players)
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


routes = [Route("/metrics", metrics, methods=["GET"])]
