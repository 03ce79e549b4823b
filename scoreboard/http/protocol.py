"""uvicorn's HTTP protocol with a deadline for reading each request.

uvicorn waits for a request's headers and body as long as bytes keep trickling in, and
a new connection that sends nothing has no timer at all: a few hundred slowloris
sockets stay open for ever. Here every request must have arrived whole (headers and
body) within `SCOREBOARD_REQUEST_READ_TIMEOUT_MS` of its first byte, and a new
connection must start one within that time too; otherwise the connection is closed.
Responses are not timed: server-sent events and WebSockets (whose handshake ends the
clock) stay open as long as they like.

A request the HTTP parser refuses (a Content-Length with a Transfer-Encoding, a
negative Content-Length, garbage) is answered 400 in the API's envelope, and the
connection closed, instead of uvicorn's plain-text answer.

`scoreboard serve` runs uvicorn with this class (`--http`); the deadline comes from
the settings through `configure`, called by the app factory in each worker.
"""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from scoreboard.core.errors import InvalidRequest
from scoreboard.core.lifecycle import begin_shutdown
from scoreboard.http.responses import error_body
from scoreboard.http.security_headers import ALWAYS

PROTOCOL_PATH = "scoreboard.http.protocol:DeadlineHttpProtocol"


class DeadlineHttpProtocol(HttpToolsProtocol):
    read_deadline_seconds: ClassVar[float] = 10.0
    _read_timer: asyncio.TimerHandle | None = None

    @classmethod
    def configure(cls, read_deadline_ms: int) -> None:
        cls.read_deadline_seconds = read_deadline_ms / 1000

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        begin_shutdown()  # end the live feeds' streams, then let in-flight requests finish
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        refused = InvalidRequest(
            "The request is not valid HTTP/1.1", details={"reason": "malformed framing"}
        )
        body = json.dumps(error_body(refused)).encode()
        headers = {
            **ALWAYS,
            "content-type": "application/json",
            "content-length": str(len(body)),
            "connection": "close",
        }
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\n" + head.encode() + b"\r\n" + body)
        self.transport.close()

    def _arm(self) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(self.read_deadline_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _too_slow(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            self.transport.close()
