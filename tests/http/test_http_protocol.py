"""A deadline for reading each request: idle and trickling sockets are closed, while
a fresh client is served at once and long-lived responses stay open."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from scoreboard.core.settings import Settings
from tests.auth_helpers import new_player, submit
from tests.conftest import RunningServer, server_env, serving

SLOW = 200  # sockets


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[RunningServer]:
    env = server_env(settings, SCOREBOARD_REQUEST_READ_TIMEOUT_MS="1000")
    with serving(env, tmp_path) as (running,):
        yield running


async def _slowloris(port: int, trickle: bool) -> float:
    """Seconds until the server closed this socket (it sends part of a request, then
    one byte now and then, or nothing)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: ")
    try:
        while time.monotonic() - started < 10:
            if trickle:
                writer.write(b"a")
                await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 0.3) == b"":
                    break
            except TimeoutError:
                continue
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def test_slow_and_idle_sockets_are_closed_and_others_are_served(
    server: RunningServer,
) -> None:
    """Was: 300 slowloris sockets were held open for ever."""
    port = server.port
    idle = [asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
    idle_pairs = await asyncio.gather(*idle)
    slow = [asyncio.create_task(_slowloris(port, trickle=i % 2 == 0)) for i in range(SLOW)]
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        started = time.monotonic()
        assert (await http.get("/health")).status_code == 200
        assert time.monotonic() - started < 1.0
    closed_after = await asyncio.gather(*slow)
    assert max(closed_after) < 3.0, max(closed_after)
    for reader, writer in idle_pairs:
        assert await asyncio.wait_for(reader.read(1), 3) == b""
        writer.close()


async def test_long_lived_responses_outlast_the_deadline(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        player = await new_player(http)
        url = server.url.replace("http://", "ws://") + "/ws/leaderboard"
        async with connect(f"{url}?token={player['access_token']}") as ws:
            await asyncio.sleep(1.6)
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 2))["type"] in (
                "pong",
                "leaderboard_update",
            )
        async with http.stream("GET", "/sse/leaderboard") as stream:
            lines = stream.aiter_lines()
            while not (await anext(lines)).startswith("data:"):
                pass  # the board, at once
            await asyncio.sleep(1.6)  # past the read deadline, the stream stays
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as other:
                assert (await submit(other, player, 5)).status_code == 200
            while not (await asyncio.wait_for(anext(lines), 5)).startswith("data:"):
                pass  # the change arrives on the same stream
        # a keep-alive connection answers several requests past the deadline
        for _ in range(3):
            assert (await http.get("/health")).status_code == 200
            await asyncio.sleep(0.6)


async def _raw(port: int, request: bytes, *, close_after: bool = False) -> bytes:
    """Send `request` as it is; what the server answered before it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    if close_after:
        writer.close()
        return b""
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        b"Content-Length: -1\r\n",
        b"Content-Length: 12abc\r\n",
    ],
)
async def test_bad_framing_is_answered_in_the_envelope(
    server: RunningServer, framing: bytes
) -> None:
    """Was: uvicorn's `400 text/plain` 'Invalid HTTP request received.'"""
    answer = await _raw(
        server.port,
        b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + framing
        + b"\r\n{}\r\n\r\n",
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer
    assert b"content-type: application/json" in head.lower()
    assert b"x-content-type-options: nosniff" in head.lower()
    error = json.loads(body)
    assert error["success"] is False and error["error"]["code"] == "INVALID_REQUEST"


async def test_a_body_cut_short_leaves_no_traceback(server: RunningServer) -> None:
    """Was: no answer and two ERROR tracebacks (ClientDisconnect) in the log."""
    request = (
        b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"username": "a"'
    )
    await _raw(server.port, request, close_after=True)
    # one that waits is closed by the read deadline, no later
    started = time.monotonic()
    assert await _raw(server.port, request) == b""
    assert time.monotonic() - started < 3
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/health")).status_code == 200
    log = server.log_path.read_text()
    assert "Traceback" not in log and '"level": "ERROR"' not in log, log
