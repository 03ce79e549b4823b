"""Pure ASGI middleware: request ids and the body-size limit enforced while reading."""

from __future__ import annotations

import itertools
import re
import uuid

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scoreboard.core.errors import PayloadTooLarge
from scoreboard.core.logs import REQUEST_ID
from scoreboard.http.security_headers import secured

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Gives every request an id (a sane incoming `X-Request-ID` is kept) and echoes it,
    with the security headers (`scoreboard.http.security_headers`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._prefix = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)

    def _next_id(self) -> str:
        """Unique without a random draw per request: a per-process prefix and a count."""
        return f"{self._prefix}-{next(self._counter):x}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else self._next_id()
        scope.setdefault("state", {})["request_id"] = request_id
        REQUEST_ID.set(request_id)  # on every log line of this request

        raw_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = secured(list(message.get("headers", ())))
                headers.append((b"x-request-id", raw_id))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Refuses a body over `max_bytes` from its Content-Length or as soon as the bytes
    read pass the limit, whichever comes first, so a large body is never buffered."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise PayloadTooLarge(details={"limit_bytes": self.max_bytes})
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise PayloadTooLarge(details={"limit_bytes": self.max_bytes})
            return message

        await self.app(scope, limited_receive, send)
