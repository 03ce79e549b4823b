"""`/metrics`: Prometheus text for the numbers operators alert on (scoreboard.core.metrics)."""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoreboard.api.board_status import BoardStatus, board_statuses
from scoreboard.api.common import services
from scoreboard.api.services import Services
from scoreboard.core.metrics import Metric, counter, gauge, gauges, render, summaries
from scoreboard.storage.cluster_health import cluster_nodes

INFO_SECONDS = 0.5
BOARD = ["board"]
_SYNC_GAUGES = (
    ("scoreboard_sync_lag", "Board events not yet read by the syncer", "lag"),
    ("scoreboard_sync_pending", "Board events read by the syncer and not yet committed", "pending"),
    ("scoreboard_sync_dead_letters", "Board events the syncer gave up on", "dead_letters"),
)
Samples = dict[tuple[str, ...], float]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _per_board(boards: list[BoardStatus], field: str) -> Samples:
    """A syncer figure of every board that has it."""
    return {
        (board.name,): value
        for board in boards
        if (value := _number(board.sync.get(field))) is not None
    }


async def _read_now(svc: Services) -> list[Metric]:
    """What this scrape reads: every board's state and syncer record in Redis, and this
    process's own state."""
    boards = await board_statuses(svc)
    families = [gauges(name, text, _per_board(boards, f), BOARD) for name, text, f in _SYNC_GAUGES]
    live = svc.live
    families += [
        gauges(
            "scoreboard_sync_running",
            "1 while the syncer reports in",
            {(b.name,): float(b.sync.get("status") == "running") for b in boards},
            BOARD,
        ),
        gauges(
            "scoreboard_feed_connected",
            "1 while this process's subscription to the board's updates is up",
            {(name,): float(up) for name, up in live.channels.connected().items()},
            BOARD,
        ),
        gauges(
            "scoreboard_live_clients",
            "Live-feed clients of this process, by the board they follow",
            {(name,): float(count) for name, count in sorted(live.followers().items())},
            BOARD,
        ),
        counter(
            "scoreboard_live_broadcasts",
            "Board updates this process broadcast to its live-feed clients",
            {(name,): count for name, count in sorted(live.stats.sent.items())},
            BOARD,
        ),
        counter(
            "scoreboard_live_direct_writes",
            "Broadcast messages written straight to a WebSocket client's socket",
            {(name,): n for name, n in sorted(live.stats.written_directly.items())},
            BOARD,
        ),
        gauges(
            "scoreboard_board_ready",
            "1 while the board is whole in Redis",
            {(b.name,): float(b.ready) for b in boards},
            BOARD,
        ),
        counter(
            "scoreboard_board_lost",
            "Times this process found the board lost from Redis",
            {(b.name,): b.lost for b in boards},
            BOARD,
        ),
        counter(
            "scoreboard_board_rebuilds",
            "Rebuilds of the board from PostgreSQL that this process ran",
            {(b.name,): b.rebuilt for b in boards},
            BOARD,
        ),
        gauges(
            "scoreboard_players",
            "Players with a score on the board",
            {(b.name,): float(b.players) for b in boards if b.players is not None},
            BOARD,
        ),
        counter(
            "scoreboard_sync_rollbacks",
            "Times the syncer saw the update sequence go back (Redis lost acknowledged updates)",
            _per_board(boards, "rollbacks"),
            BOARD,
        ),
        counter(
            "scoreboard_board_repairs",
            "Players the syncer's reconciler repaired, by difference",
            {
                (b.name, kind): count
                for b in boards
                if isinstance(repairs := b.sync.get("repairs"), dict)
                for kind, count in sorted(repairs.items())
            },
            ["board", "kind"],
        ),
    ]
    families += _commit_families(boards)
    families += await _redis_families(svc)
    families += await _node_families(svc)
    families += _replica_families(svc)
    return families


def _replica_families(svc: Services) -> list[Metric]:
    """Each PostgreSQL read replica, as its last check (each second) found it."""
    states = svc.reads.states()
    if not states:
        return []
    return [
        gauges(
            "scoreboard_db_replica_serving",
            "1 while the PostgreSQL read replica serves reads (answers, and is not too far behind)",
            {(s.url,): float(s.state == "serving") for s in states},
            ["replica"],
        ),
        gauges(
            "scoreboard_db_replica_lag_seconds",
            "How long ago the newest primary WAL position the replica has replayed was written",
            {(s.url,): s.lag_seconds for s in states if s.lag_seconds is not None},
            ["replica"],
        ),
        gauges(
            "scoreboard_db_replica_lag_bytes",
            "WAL the replica has still to replay",
            {(s.url,): float(s.lag_bytes) for s in states if s.lag_bytes is not None},
            ["replica"],
        ),
    ]


async def _node_families(svc: Services) -> list[Metric]:
    """On a cluster, each node: whether it answers, a replica's lag behind its primary,
    and the boards a primary holds."""
    if not svc.settings.redis_cluster:
        return []
    names = [config.name for config in svc.catalog.all()]
    nodes = await cluster_nodes(svc.redis, svc.keys, names, INFO_SECONDS)
    if nodes is None:
        return []
    return [
        gauges(
            "scoreboard_redis_node_up",
            "1 while the Redis Cluster node answers",
            {(n.address, n.role): float(n.up) for n in nodes},
            ["node", "role"],
        ),
        gauges(
            "scoreboard_redis_replica_link_up",
            "1 while the replica's link to its primary is up",
            {
                (n.address, n.primary or ""): float(n.link == "up")
                for n in nodes
                if n.up and n.role == "replica"
            },
            ["node", "primary"],
        ),
        gauges(
            "scoreboard_redis_replica_lag_bytes",
            "How far the replica's replication offset is behind its primary's",
            {
                (n.address, n.primary or ""): float(n.lag_bytes)
                for n in nodes
                if n.lag_bytes is not None
            },
            ["node", "primary"],
        ),
        gauges(
            "scoreboard_redis_node_boards",
            "Boards whose keys the primary holds",
            {(n.address,): float(len(n.boards)) for n in nodes if n.role == "primary"},
            ["node"],
        ),
    ]


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


def _commit_families(boards: list[BoardStatus]) -> list[Metric]:
    """The syncer's commits per board: events and transactions (their ratio is the mean
    batch), the time they took, and the last batch's size."""
    commits: dict[tuple[str, ...], tuple[int, float]] = {
        (b.name,): (int(count), seconds)
        for b in boards
        if (count := _number(b.sync.get("transactions"))) is not None
        and (seconds := _number(b.sync.get("commit_seconds"))) is not None
    }
    return [
        counter(
            "scoreboard_sync_committed_events",
            "Board events the syncer committed to PostgreSQL",
            _per_board(boards, "committed_events"),
            BOARD,
        ),
        summaries(
            "scoreboard_sync_commit_duration_seconds",
            "Time the syncer's PostgreSQL transactions took (count: transactions)",
            commits,
            BOARD,
        ),
        gauges(
            "scoreboard_sync_last_batch_events",
            "Events in the last committed batch",
            _per_board(boards, "last_batch_events"),
            BOARD,
        ),
    ]


async def metrics(request: Request) -> Response:
    body = render(await _read_now(services(request)))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


routes = [Route("/metrics", metrics, methods=["GET"])]
