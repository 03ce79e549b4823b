"""The WebSocket server protocol's shared-frame writer, driven through uvicorn's own
protocol over an in-memory transport and read back by a WebSocket client protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from scoreboard.http.ws_protocol import (
    FRAME_WRITER,
    PROTOCOL_PATH,
    FrameWriter,
    SharedFrameWebSocketProtocol,
    text_frame,
)


class MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.written = bytes(self.written), bytearray()
        return data


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Connection:
    """A server protocol with an accepting app, and a client on the other end."""

    def __init__(self, deflate: bool = False) -> None:
        self.writers: list[FrameWriter | None] = []

        async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            self.writers.append(scope["extensions"].get(FRAME_WRITER))
            while (await receive())["type"] != "websocket.disconnect":
                pass

        config = Config(app=app, ws=PROTOCOL_PATH, ws_per_message_deflate=deflate, lifespan="off")
        config.load()
        self.server = SharedFrameWebSocketProtocol(
            config=config, server_state=ServerState(), app_state={}
        )
        self.transport = MemoryTransport()
        self.server.connection_made(self.transport)
        extensions = [ClientPerMessageDeflateFactory()] if deflate else []
        self.client = ClientProtocol(parse_uri("ws://127.0.0.1:8000/ws"), extensions=extensions)

    async def open(self) -> FrameWriter | None:
        self.client.send_request(self.client.connect())
        self.server.data_received(b"".join(self.client.data_to_send()))
        for _ in range(10):
            await asyncio.sleep(0)
            if self.writers:
                break
        self.client.receive_data(self.transport.take())
        (response,) = self.client.events_received()
        assert isinstance(response, Response) and response.status_code == 101
        return self.writers[0]

    def received(self) -> list[bytes]:
        self.client.receive_data(self.transport.take())
        frames = [event for event in self.client.events_received() if isinstance(event, Frame)]
        assert all(frame.opcode is Opcode.TEXT for frame in frames)
        return [bytes(frame.data) for frame in frames]

    async def close(self) -> None:
        self.server.connection_lost(None)
        await asyncio.sleep(0)


async def test_a_shared_frame_reaches_the_client_as_a_text_message() -> None:
    connection = Connection()
    writer = await connection.open()
    assert writer is not None
    frame = text_frame(b'{"type":"leaderboard_update"}')
    assert writer(frame) and writer(frame)
    assert connection.received() == [b'{"type":"leaderboard_update"}'] * 2
    big = b"[" + b"0," * 40_000 + b"0]"
    assert writer(text_frame(big))
    assert connection.received() == [big]
    await connection.close()


async def test_nothing_is_written_while_the_socket_is_backed_up() -> None:
    connection = Connection()
    writer = await connection.open()
    assert writer is not None
    connection.server.pause_writing()
    assert not writer(text_frame(b"{}"))
    connection.server.resume_writing()
    assert writer(text_frame(b"{}"))
    assert connection.received() == [b"{}"]
    await connection.close()


async def test_nothing_is_written_once_the_connection_closes() -> None:
    connection = Connection()
    writer = await connection.open()
    assert writer is not None
    await connection.close()
    assert not writer(text_frame(b"{}"))
    assert connection.transport.take() == b""


async def test_no_shared_frames_when_compression_is_negotiated() -> None:
    connection = Connection(deflate=True)
    assert await connection.open() is None
    assert connection.client.extensions  # compression was negotiated
    await connection.close()
