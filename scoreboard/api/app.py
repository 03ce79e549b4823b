"""The application factory: routes under `/v1` and bare, envelope errors, lifespan."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sse_starlette.sse import AppStatus
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Mount, Router

from scoreboard.api.routes import all_routes
from scoreboard.api.services import Services
from scoreboard.core import lifecycle, tracing
from scoreboard.core.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ScoreboardError,
    ServiceUnavailable,
)
from scoreboard.core.gc_tuning import tune_for_service
from scoreboard.core.log_redaction import redact_server_logs
from scoreboard.core.metrics import MetricsMiddleware, count_error
from scoreboard.core.settings import Settings
from scoreboard.http.middleware import BodyLimitMiddleware, RequestIdMiddleware
from scoreboard.http.protocol import DeadlineHttpProtocol
from scoreboard.http.responses import failure
from scoreboard.http.routing import StaticFirstRouter

log = logging.getLogger("scoreboard")


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _scoreboard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ScoreboardError)
    if isinstance(exc, ServiceUnavailable) and request.method in _SAFE_METHODS:
        exc.nothing_applied()  # a read changes nothing, whatever its store did
    count_error(exc.code, request.scope)
    return failure(exc)


def _slash_twin(request: Request) -> str | None:
    """The path with its trailing slash added or taken off, when a route answers that
    one instead, as a relative reference (never built from the Host header)."""
    path: str = request.scope["path"]
    if path == "/":
        return None
    twin = path.rstrip("/") if path.endswith("/") else f"{path}/"
    if not twin or twin.startswith("//"):
        return None
    scope = {**request.scope, "path": twin}
    if not any(route.matches(scope)[0] is not Match.NONE for route in request.app.router.routes):
        return None
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{twin}?{query}" if query else twin


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        twin = _slash_twin(request)
        if twin is not None:
            return RedirectResponse(twin, status_code=307)
        return failure(NotFound(f"No route for {request.url.path}"))
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return failure(MethodNotAllowed(headers={"Allow": allowed} if allowed else None))
    return failure(InvalidRequest(str(exc.detail)))


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client left before its body arrived whole (or cut it short): nobody reads
    an answer, and it is no error of ours."""
    log.info("client disconnected before its request body arrived whole")
    return failure(InvalidRequest("The request body ended before its Content-Length"))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("state", {}).get("request_id", "-")
    log.error(
        "unhandled error in %s %s [request %s]",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return failure(ScoreboardError(details={"request_id": request_id}))


def create_app(settings: Settings) -> Starlette:
    DeadlineHttpProtocol.configure(settings.request_read_timeout_ms)
    # The live feeds end their own streams when shutdown begins (scoreboard.core.lifecycle),
    # cleanly; sse-starlette's drain would cut them mid-response instead.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]
    tracing.configure(tracing.SERVER)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redact_server_logs()
        services = await Services.open(settings)
        app.state.services = services
        lifecycle.on_shutdown(services.live.going_away)
        tune_for_service()
        try:
            yield
        finally:
            await services.close()
            tracing.shutdown()

    routes = all_routes()
    versioned = Mount("/v1", app=StaticFirstRouter(routes=routes))
    app = Starlette(
        routes=[versioned, *routes],
        middleware=[
            *tracing.middleware(),
            Middleware(MetricsMiddleware),
            Middleware(RequestIdMiddleware),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        ],
        exception_handlers={
            ScoreboardError: _scoreboard_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )
    # the same routes and lifespan, with paths without parameters found by one lookup
    app.router = StaticFirstRouter(routes=[versioned, *routes], lifespan=lifespan)
    # Starlette's own slash redirect names the Host header's host; ours is relative
    app.router.redirect_slashes = False
    assert isinstance(versioned.app, Router)
    versioned.app.redirect_slashes = False
    return app


def create_app_from_env() -> Starlette:
    """Factory for `uvicorn --factory` and multi-worker serving: settings read per worker."""
    return create_app(Settings.from_env(os.environ))
