"""The WebSocket server protocol: uvicorn's own, plus a way to write one frame to many clients.

A board update is the same bytes for every client (server frames are not masked and
compression is off), so a live feed builds the frame once and hands it to each
connection's `write_shared_frame`, which writes it straight to the socket. Through
ASGI the same send costs an `await`, a message dict, a per-client frame build and a
task switch per client; at thousands of clients that was most of a broadcast.

The writer is offered to the application as the ASGI scope extension `FRAME_WRITER`.
Anything else (a test client, another server) lacks it and the feeds fall back to
ordinary ASGI sends. `scoreboard serve` selects this protocol; it relies on the
connection state that uvicorn's sans-I/O protocol keeps, which the live-feed tests
against a real server exercise.
"""

from __future__ import annotations

from collections.abc import Callable

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from scoreboard.core.lifecycle import begin_shutdown

FRAME_WRITER = "scoreboard.shared_frames"
PROTOCOL_PATH = "scoreboard.http.ws_protocol:SharedFrameWebSocketProtocol"

FrameWriter = Callable[[bytes], bool]


def text_frame(payload: bytes) -> bytes:
    """A complete, unmasked, uncompressed text frame: what a server sends any client."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


GOING_AWAY = 1001


class SharedFrameWebSocketProtocol(WebSocketsSansIOProtocol):
    conn: ServerProtocol

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        # With an extension (compression) negotiated, frames differ per connection.
        if scope is not None and not self.conn.extensions:
            scope["extensions"][FRAME_WRITER] = self.write_shared_frame

    def shutdown(self) -> None:
        """Close with 1001 (going away: reconnect elsewhere) where uvicorn says 1012."""
        begin_shutdown()
        if self.close_sent or not self.handshake_complete:
            super().shutdown()
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
        self.conn.send_close(GOING_AWAY)
        self.transport.write(b"".join(self.conn.data_to_send()))

    def write_shared_frame(self, frame: bytes) -> bool:
        """Write a frame built by `text_frame`; False (nothing written) when the connection
        is not open or its write buffer is full, so the caller keeps the message for later."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True
