"""Live feeds: `WS /ws/leaderboard?token=…` and `GET /sse/leaderboard`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from scoreboard.api.common import address, services
from scoreboard.auth.tokens import AccessClaims
from scoreboard.core.errors import ScoreboardError
from scoreboard.core.periods import ALL_TIME
from scoreboard.http.ws_protocol import FRAME_WRITER
from scoreboard.live.messages import Broadcast
from scoreboard.live.subscriber import Subscriber
from scoreboard.storage.keys import DEFAULT_BOARD

POLICY_VIOLATION = 1008
TICK_SECONDS = 5.0
FLOOD_WINDOW_SECONDS = 1.0
SSE_PING_SECONDS = 15


def _error(code: str, message: str, details: dict[str, Any] | None = None) -> str:
    return json.dumps(
        {
            "type": "error",
            "success": False,
            "error": {"code": code, "message": message, "details": details or {}},
        }
    )


async def _authenticate(websocket: WebSocket) -> AccessClaims | None:
    token = websocket.query_params.get("token", "")
    try:
        return await services(websocket).sessions.authenticate(token)
    except ScoreboardError:
        return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_key(text: str) -> tuple[str, str, int] | None:
    """An origin as (scheme, host, port), default ports filled in; None if malformed."""
    parts = urlsplit(text.strip().lower())
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        return parts.scheme, parts.hostname, parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:  # a port out of range
        return None


def origin_allowed(origin: str | None, own_origin: str, allowed: tuple[str, ...]) -> bool:
    """Browsers send the page's Origin with every WebSocket handshake: a page of another
    site may not open one with a player's token (cross-site WebSocket hijacking). The
    server's own origin is always allowed (the live page), others only when listed in
    SCOREBOARD_ALLOWED_ORIGINS ('*': any); origins are compared by scheme, host and
    port. Clients that send no Origin are no browser."""
    if origin is None or "*" in allowed:
        return True
    key = _origin_key(origin)
    return key is not None and any(
        key == _origin_key(candidate) for candidate in (own_origin, *allowed)
    )


def _own_origin(websocket: WebSocket) -> str:
    """The origin of this server's own pages, as the handshake reached it (its scheme
    as the trusted proxy reported it)."""
    scheme = "https" if websocket.url.scheme in ("wss", "https") else "http"
    return f"{scheme}://{websocket.headers.get('host', '')}"


async def ws_leaderboard(websocket: WebSocket) -> None:
    settings = services(websocket).settings
    origin = websocket.headers.get("origin")
    if not origin_allowed(origin, _own_origin(websocket), settings.allowed_origins):
        await websocket.close(code=POLICY_VIOLATION, reason="origin not allowed")
        return
    claims = await _authenticate(websocket)
    if claims is None:
        await websocket.close(code=POLICY_VIOLATION, reason="invalid or missing token")
        return
    await websocket.accept()
    session = _WsSession(websocket, claims)
    try:
        await session.run()
    finally:
        session.close()


class _WsSession:
    """One socket's subscriptions (each ranking it follows, sent by a task of its own
    when it is not written to directly) and the watch over its token and session."""

    def __init__(self, websocket: WebSocket, claims: AccessClaims) -> None:
        self.websocket = websocket
        self.claims = claims
        self.svc = services(websocket)
        self.messages: list[float] = []
        self.rankings: dict[tuple[str, str], tuple[Subscriber, asyncio.Task[None]]] = {}
        self._alarm = asyncio.Event()  # the session may have been revoked

    async def run(self) -> None:
        unwatch = self.svc.live.watch_session(self.claims.session_id, self._alarm.set)
        watcher = asyncio.create_task(self._watch())
        try:
            await self._receive_loop()
        except WebSocketDisconnect:
            pass
        finally:
            unwatch()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher

    def close(self) -> None:
        for subscriber, task in self.rankings.values():
            self.svc.live.unsubscribe(subscriber)
            task.cancel()

    async def _receive_loop(self) -> None:
        settings = self.svc.settings
        while True:
            text = await self.websocket.receive_text()
            now = time.monotonic()
            self.messages = [t for t in self.messages if now - t < FLOOD_WINDOW_SECONDS]
            self.messages.append(now)
            if len(self.messages) > settings.ws_max_messages_per_second:
                await self.websocket.close(POLICY_VIOLATION, "too many messages")
                return
            await self._handle(text)

    async def _handle(self, text: str) -> None:
        try:
            message = json.loads(text)
            kind = message.get("type") if isinstance(message, dict) else None
        except ValueError:
            kind = None
        if kind == "subscribe_leaderboard":
            wanted = _ranking(message.get("data"))
            if wanted is None:
                await self.websocket.send_text(
                    _error("INVALID_REQUEST", "data.board and data.period must be text")
                )
                return
            await self._follow(*wanted)
            return
        if kind == "ping":
            await self.websocket.send_text(json.dumps({"type": "pong"}))
            return
        await self.websocket.send_text(
            _error("INVALID_REQUEST", 'expected {"type": "subscribe_leaderboard"}')
        )

    async def _follow(self, board: str, period: str) -> None:
        if (board, period) in self.rankings:
            return
        if await self._at_subscription_limit():
            return
        try:
            subscriber, current = await self.svc.live.subscribe(
                board, period, self.claims.session_id
            )
        except ScoreboardError as exc:
            await self.websocket.send_text(_error(exc.code, exc.message))
            return
        await self.websocket.send_text(current.ws_text)
        # Only now: an update written directly must not overtake the first state.
        extensions = self.websocket.scope.get("extensions") or {}
        subscriber.write_frame = extensions.get(FRAME_WRITER)
        task = asyncio.create_task(self._send_to(subscriber))
        self.rankings[(board, period)] = (subscriber, task)

    async def _at_subscription_limit(self) -> bool:
        """Whether this socket follows as many rankings as one may (then it is told so,
        and follows what it did)."""
        limit = self.svc.settings.ws_max_subscriptions
        if len(self.rankings) < limit:
            return False
        await self.websocket.send_text(
            _error(
                "INVALID_REQUEST",
                f"A socket follows at most {limit} rankings (SCOREBOARD_WS_MAX_SUBSCRIPTIONS)",
                {"reason": "subscription_limit", "limit": limit},
            )
        )
        return True

    async def _send_to(self, subscriber: Subscriber) -> None:
        """Sends what could not be written to the socket directly."""
        with contextlib.suppress(Exception):
            while True:
                await subscriber.deliver(self._send, TICK_SECONDS)

    async def _watch(self) -> None:
        """Closes the connection when its token expires or its session is revoked."""
        while True:
            left = self.claims.expires_at - time.time()
            if left <= 0:
                await self.websocket.close(POLICY_VIOLATION, "token expired")
                return
            if await self.svc.sessions.is_revoked(self.claims):
                await self.websocket.close(POLICY_VIOLATION, "session revoked")
                return
            self._alarm.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._alarm.wait(), min(TICK_SECONDS, left))

    async def _send(self, message: Broadcast) -> None:
        await self.websocket.send_text(message.ws_text)


def _ranking(data: object) -> tuple[str, str] | None:
    """(board, period) a subscription asks for: both optional, `global` and `all`."""
    if data is None:
        return DEFAULT_BOARD, ALL_TIME
    if not isinstance(data, dict):
        return None
    board, period = data.get("board", DEFAULT_BOARD), data.get("period", ALL_TIME)
    if not isinstance(board, str) or not isinstance(period, str):
        return None
    return board, period


def _sse_event(message: Broadcast) -> dict[str, Any]:
    return {"event": "leaderboard_update", "id": message.event_id, "data": message.sse_data}


async def sse_leaderboard(request: Request) -> EventSourceResponse:
    svc = services(request)
    board = request.query_params.get("board", DEFAULT_BOARD)
    period = request.query_params.get("period", ALL_TIME)
    # entered here, so a refusal (429, 404) is the answer; left as the stream ends
    held = contextlib.AsyncExitStack()
    most = svc.settings.sse_max_connections_per_ip
    stream = svc.live.stream(board, period, address(request), most)
    subscriber, current = await held.enter_async_context(stream)

    async def events() -> AsyncIterator[dict[str, Any]]:
        async with held:
            yield _sse_event(current)
            while not svc.live.closing:  # shutting down: end cleanly, the client reconnects
                message = await subscriber.next(TICK_SECONDS)
                if message is not None:
                    yield _sse_event(message)

    return EventSourceResponse(
        events(), ping=SSE_PING_SECONDS, headers={"Cache-Control": "no-store"}
    )


routes = [
    WebSocketRoute("/ws/leaderboard", ws_leaderboard),
    Route("/sse/leaderboard", sse_leaderboard, methods=["GET"]),
]
