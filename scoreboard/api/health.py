"""`/health` (is the process up) and `/health/detailed` (can it reach its stores)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoreboard import __version__
from scoreboard.api.board_status import board_statuses
from scoreboard.api.common import services
from scoreboard.api.services import Services
from scoreboard.core.errors import ServiceUnavailable
from scoreboard.http.responses import ok
from scoreboard.storage.cluster_health import cluster_nodes
from scoreboard.storage.redis_client import as_text
from scoreboard.sync.status import all_problems, summarise

CHECK_TIMEOUT_SECONDS = 0.8
BOARD_SYNC_FIELDS = ("lag", "pending", "dead_letters", "last_commit")


async def health(request: Request) -> Response:
    return ok({"status": "ok"})


async def _check_redis(svc: Services) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await svc.redis.ping()
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}
    latency = round((time.perf_counter() - started) * 1000, 2)
    version = "in-process" if svc.settings.embedded else await _redis_version(svc)
    return {"status": "up", "latency_ms": latency, "version": version}


async def _redis_version(svc: Services) -> str | None:
    try:
        info = await svc.redis.info("server")
    except Exception:
        return None
    version = info.get("redis_version")
    return str(version) if version is not None else None


async def _check_postgres(svc: Services) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        version = await svc.pool.fetchval("SHOW server_version", timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        return {"status": "down", "error": type(exc).__name__}
    return {
        "status": "up",
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "version": version,
    }


async def _check_board(svc: Services) -> dict[str, Any]:
    """Whether the board the routes without a board read is whole in Redis (lost: it is
    being rebuilt); while it is not, the service answers 503."""
    try:
        epoch = await svc.redis.hget(svc.keys.board_state(), "epoch")
    except Exception as exc:
        return {"status": "unknown", "error": type(exc).__name__}
    if epoch is None:
        return {"status": "rebuilding", "rebuilds": svc.guard.stats.rebuilt}
    return {"status": "ready", "epoch": as_text(epoch), "rebuilds": svc.guard.stats.rebuilt}


async def _check_nodes(svc: Services) -> dict[str, Any]:
    """On a cluster, every node: its role, whether it answers, a replica's link and lag,
    the boards a primary holds; and what is wrong with any of them."""
    if not svc.settings.redis_cluster:
        return {}
    names = [config.name for config in svc.catalog.all()]
    nodes = await cluster_nodes(svc.redis, svc.keys, names, CHECK_TIMEOUT_SECONDS / 2)
    if nodes is None:
        return {"nodes": [], "problems": ["the Redis Cluster's nodes could not be listed"]}
    return {
        "nodes": [node.as_dict() for node in nodes],
        "problems": [problem for node in nodes if (problem := node.problem())],
    }


async def _within_deadline(check: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """A stalled store is reported as such, within the check's own deadline."""
    try:
        return await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return {"status": "down", "error": "timeout"}


async def _check_boards(svc: Services) -> dict[str, Any]:
    """Every board: whether it is whole in Redis, its players, and how far the syncer
    is with it (`sync`: the syncer process, with every board's backlog summed)."""
    statuses = await board_statuses(svc)
    return {
        "boards": {
            board.name: {
                "status": "ready" if board.epoch is not None else "rebuilding",
                "players": board.players,
                "rebuilds": board.rebuilt,
                "sync": {name: board.sync.get(name) for name in BOARD_SYNC_FIELDS},
            }
            for board in statuses
        },
        "sync": summarise([board.sync for board in statuses]),
        "problems": [f"board {b.name}: being rebuilt" for b in statuses if b.epoch is None]
        + all_problems({b.name: b.sync for b in statuses}, svc.settings),
    }


async def health_detailed(request: Request) -> Response:
    svc = services(request)
    redis, postgres, board, read, nodes = await asyncio.gather(
        _within_deadline(_check_redis(svc)),
        _within_deadline(_check_postgres(svc)),
        _within_deadline(_check_board(svc)),
        _within_deadline(_check_boards(svc)),
        _within_deadline(_check_nodes(svc)),
    )
    if "nodes" in nodes:
        redis = {**redis, "nodes": nodes["nodes"]}
    if svc.reads.replicas:  # as the last check found them (each second)
        postgres = {**postgres, "replicas": [state.as_dict() for state in svc.reads.states()]}
    timed_out = {"status": "unknown", "error": "timeout"}
    components = {
        "redis": redis,
        "postgres": postgres,
        "sync": read.get("sync", timed_out),
        "board": board,
        "boards": read.get("boards", timed_out),
    }
    healthy = redis["status"] == postgres["status"] == "up" and board["status"] == "ready"
    problems: list[str] = (
        read.get("problems", []) + nodes.get("problems", []) + svc.reads.problems()
    )
    data = {
        "status": "ok" if healthy and not problems else "degraded",
        "problems": problems,
        "version": __version__,
        "mode": svc.run_mode,
        "uptime_seconds": round(time.time() - svc.started_at, 1),
        "components": components,
        "warnings": svc.redis_warnings,
    }
    if not healthy:
        raise ServiceUnavailable(
            "A backing service is unreachable or the board is being rebuilt",
            retry_after=2,
            details=data,
        )
    return ok(data)


routes = [
    Route("/health", health, methods=["GET"]),
    Route("/health/detailed", health_detailed, methods=["GET"]),
]
