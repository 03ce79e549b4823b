"""Live feeds against real server processes: WebSocket, SSE, several instances."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from scoreboard.core.settings import Settings
from tests.auth_helpers import bearer, new_player, submit
from tests.conftest import RunningServer, server_env, serving

GENEROUS = "100000/minute"

pytestmark = pytest.mark.both_topologies


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return server_env(
        settings,
        SCOREBOARD_RATE_LIMIT_SCORE_UPDATE=GENEROUS,
        SCOREBOARD_RATE_LIMIT_ACTION_TOKEN=GENEROUS,
        SCOREBOARD_RATE_LIMIT_LEADERBOARD=GENEROUS,
        SCOREBOARD_BROADCAST_INTERVAL_MS="100",
        **extra,
    )


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[RunningServer]:
    with serving(_env(settings), tmp_path) as (server,):
        yield server


def _ws_url(server: RunningServer, token: str) -> str:
    return server.url.replace("http://", "ws://") + f"/ws/leaderboard?token={token}"


async def _next_update(ws: ClientConnection, within: float = 3.0) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), within))
        if message["type"] == "leaderboard_update":
            data: dict[str, Any] = message["data"]
            return data


async def test_a_websocket_needs_a_valid_token(live_server: RunningServer) -> None:
    for token in ("", "garbage"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(_ws_url(live_server, token)):
                pass
        assert refused.value.response.status_code == 403


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rpartition(" ")[2])
    raise AssertionError(f"{name} missing from /metrics")


@pytest.mark.cluster_in_ci
async def test_websocket_gets_the_board_then_each_change(live_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        watcher, player = await new_player(http), await new_player(http)
        await submit(http, watcher, 5)
        async with connect(_ws_url(live_server, watcher["access_token"])) as ws:
            await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
            current = await _next_update(ws)
            assert [e["score"] for e in current["leaderboard"]] == [5]
            assert current["updated_user"] is None
            await submit(http, player, 42)
            update = await _next_update(ws)
            if update["updated_user"] and update["updated_user"]["user_id"] == watcher["user_id"]:
                # the watcher's own earlier change, heard after subscribing (pub/sub can
                # lag the request that caused it), carries the same board: skip it
                update = await _next_update(ws)
            metrics = (await http.get("/metrics")).text
    # `scoreboard serve` writes each update's frame, built once, straight to the socket
    assert _metric(metrics, "scoreboard_live_direct_writes_total") >= 1
    assert _metric(metrics, "scoreboard_live_clients") == 1
    assert update["leaderboard"][0]["user_id"] == player["user_id"]
    assert update["updated_user"] == {
        "user_id": player["user_id"],
        "username": player["username"],
        "old_rank": None,
        "new_rank": 1,
        "score_change": 42,
        "new_score": 42,
    }
    assert update["timestamp"].endswith("Z")
    assert update["total_players"] == 2


async def test_websocket_protocol_errors(live_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        player = await new_player(http)
    url = _ws_url(live_server, player["access_token"])
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "dance"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 3))
        assert reply["type"] == "error" and reply["error"]["code"] == "INVALID_REQUEST"
    async with connect(url, max_size=None) as ws:
        await ws.send("x" * 10_000)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 1009
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed):
            for _ in range(100):
                await ws.send(json.dumps({"type": "ping"}))
            while True:
                await asyncio.wait_for(ws.recv(), 3)
        assert ws.close_code == 1008


async def test_a_websocket_closes_when_its_session_is_revoked(
    live_server: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        player = await new_player(http)
        async with connect(_ws_url(live_server, player["access_token"])) as ws:
            await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
            await _next_update(ws)
            await http.post("/auth/logout", headers=bearer(player["access_token"]))
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 8)
            assert ws.close_code == 1008


async def _sse_events(response: httpx.Response) -> Any:
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.strip()


@pytest.mark.cluster_in_ci
async def test_sse_sends_the_board_then_changes(live_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        player = await new_player(http)
        async with http.stream(
            "GET", "/sse/leaderboard", headers={"Last-Event-ID": "1-0"}
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _sse_events(response)
            first = await asyncio.wait_for(anext(events), 3)
            assert first["event"] == "leaderboard_update"
            assert json.loads(first["data"])["leaderboard"] == []
            await submit(http, player, 9)
            update = await asyncio.wait_for(anext(events), 3)
    body = json.loads(update["data"])
    assert body["updated_user"]["user_id"] == player["user_id"]
    assert update["id"] and update["id"] != first["id"]


async def test_a_burst_is_coalesced(live_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        players = [await new_player(http) for _ in range(4)]
        async with connect(_ws_url(live_server, players[0]["access_token"])) as ws:
            await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
            await _next_update(ws)
            await asyncio.gather(*(submit(http, p, 10 + i) for i, p in enumerate(players)))
            await asyncio.gather(*(submit(http, p, 10) for p in players))
            received = []
            with pytest.raises(TimeoutError):
                while True:
                    received.append(await _next_update(ws, within=0.6))
    assert 1 <= len(received) < 8
    last = received[-1]
    assert [e["score"] for e in last["leaderboard"]] == [23, 22, 21, 20]
    assert sum(len(message["updated_users"]) for message in received) == 8


@pytest.mark.cluster_in_ci
async def test_a_client_on_one_instance_sees_writes_through_another(
    settings: Settings, tmp_path: Path
) -> None:
    with serving(_env(settings), tmp_path, count=2) as (first, second):
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=30) as a,
            httpx.AsyncClient(base_url=second.url, timeout=30) as b,
        ):
            watcher = await new_player(a)
            player = await new_player(b)
            async with connect(_ws_url(first, watcher["access_token"])) as ws:
                await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
                await _next_update(ws)
                await submit(b, player, 77)
                update = await _next_update(ws)
    assert update["updated_user"]["user_id"] == player["user_id"]


async def test_the_live_page_is_served(live_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        page = await http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "new EventSource(`/sse/leaderboard?${query}`)" in page.text
    assert not re.search(r"src\s*=|@import|url\(", page.text)  # no assets of its own
    assert re.findall(r'href="([^"]*)"', page.text) == ["/docs", "/console"]  # links on this site


async def test_sse_streams_are_capped_per_address(settings: Settings, tmp_path: Path) -> None:
    env = _env(settings, SCOREBOARD_SSE_MAX_CONNECTIONS_PER_IP="2")
    with serving(env, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async with (
                http.stream("GET", "/sse/leaderboard") as one,
                http.stream("GET", "/sse/leaderboard") as two,
            ):
                assert one.status_code == two.status_code == 200
                third = await http.get("/sse/leaderboard")
                assert third.status_code == 429
                assert third.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
            # the slots come back once the server has seen the two streams closed
            deadline = asyncio.get_running_loop().time() + 3
            while True:
                async with http.stream("GET", "/sse/leaderboard") as again:
                    if again.status_code == 200:
                        break
                assert asyncio.get_running_loop().time() < deadline, "the slots never came back"
                await asyncio.sleep(0.05)


async def test_pings_keep_a_live_client_and_drop_a_silent_one(
    settings: Settings, tmp_path: Path
) -> None:
    env = _env(settings, SCOREBOARD_WS_PING_INTERVAL_MS="300")
    with serving(env, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            player = await new_player(http)
        url = _ws_url(server, player["access_token"])
        parts = urlsplit(url)
        # A client that completes the handshake, then never answers anything.
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        async with connect(url, ping_interval=None) as alive:
            # the silent one is cut off after a ping and another interval...
            rest = await asyncio.wait_for(reader.read(), 10)
            assert rest.startswith(b"\x89")  # it was pinged
            writer.close()
            # ...while the one that answers pings is still served after many intervals
            await asyncio.sleep(1.5)
            await alive.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(alive.recv(), 3)) == {"type": "pong"}


@pytest.mark.parametrize("access_log", [False, True])
async def test_no_token_reaches_the_log(
    settings: Settings, tmp_path: Path, access_log: bool
) -> None:
    """Was: every WebSocket handshake wrote the full access JWT to the log, even with
    the access log off."""
    with serving(_env(settings), tmp_path, access_log=access_log) as (server,):
        async with httpx.AsyncClient(base_url=server.url) as http:
            player = await new_player(http)
            async with connect(_ws_url(server, player["access_token"])) as ws:
                await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
                await _next_update(ws)
            with pytest.raises(InvalidStatus):
                async with connect(_ws_url(server, "eyJnot.a.token")):
                    pass
            await http.get(f"/leaderboard/top10?token={player['refresh_token']}")
        await asyncio.sleep(0.2)
        log = server.log_path.read_text()
    messages = [json.loads(line)["message"] for line in log.splitlines() if line.strip()]
    assert any('"WebSocket /ws/leaderboard?…" [accepted]' in m for m in messages)
    assert any('"WebSocket /ws/leaderboard?…" 403' in m for m in messages)
    assert "eyJ" not in log
    assert player["access_token"] not in log and player["refresh_token"] not in log


async def test_a_websocket_from_another_site_is_refused(settings: Settings, tmp_path: Path) -> None:
    """Was: a WebSocket from Origin http://evil.example was accepted."""
    env = _env(settings, SCOREBOARD_ALLOWED_ORIGINS="https://game.example")
    with serving(env, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url) as http:
            player = await new_player(http)
        url = _ws_url(server, player["access_token"])
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
        # compared by scheme, host and port (was: any scheme of the server's own host)
        for foreign in (server.url.replace("http://", "https://"), "https://game.example:444"):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, origin=foreign):  # type: ignore[arg-type]
                    pass
            assert refused.value.response.status_code == 403, foreign
        for origin in (server.url, "https://game.example", "https://game.example:443", None):
            async with connect(url, origin=origin) as ws:  # type: ignore[arg-type]
                await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
                await _next_update(ws)
