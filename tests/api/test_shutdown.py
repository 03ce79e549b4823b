"""SIGTERM to one of two servers under load: it stops accepting, closes WebSockets with
1001 and ends SSE streams cleanly, finishes what is in flight and exits 0; clients carry
on against the other server and nothing is counted twice."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from scoreboard.core.settings import Settings
from tests.auth_helpers import bearer, issue_token, new_player
from tests.conftest import server_env, serving

GENEROUS = "100000/minute"


async def _player_loop(
    urls: list[str], player: dict[str, Any], stop: asyncio.Event, log: dict[str, int]
) -> int:
    """Updates through the first server while it answers, then the other; a lost answer
    is retried with the same token and body on the other one (replayed, not counted
    again). Returns the points accepted."""
    points, current = 0, 0
    async with httpx.AsyncClient(timeout=10) as http:
        while not stop.is_set():
            token = None
            for _ in range(4):
                base = urls[current]
                try:
                    if token is None:
                        token = await issue_token(_on(http, base), player["access_token"])
                    answer = await http.post(
                        f"{base}/v1/scores/update",
                        json={"score_increase": 3},
                        headers={**bearer(player["access_token"]), "X-Action-Token": token},
                    )
                except httpx.TransportError:
                    log["switched"] += 1
                    current = 1  # the other server
                    continue
                assert answer.status_code == 200, answer.text
                log["ok"] += 1
                points += 3
                break
            await asyncio.sleep(0.01)
    return points


def _on(http: httpx.AsyncClient, base: str) -> httpx.AsyncClient:
    http.base_url = httpx.URL(base)
    return http


async def test_sigterm_under_load_drops_no_request(settings: Settings, tmp_path: Path) -> None:
    env = server_env(
        settings,
        SCOREBOARD_RATE_LIMIT_SCORE_UPDATE=GENEROUS,
        SCOREBOARD_RATE_LIMIT_ACTION_TOKEN=GENEROUS,
        SCOREBOARD_ANTICHEAT_MODE="off",
    )
    with serving(env, tmp_path, count=2) as servers:
        leaving, staying = servers
        urls = [leaving.url, staying.url]
        async with httpx.AsyncClient(base_url=staying.url, timeout=10) as http:
            players = [await new_player(http) for _ in range(4)]
        stop, log = asyncio.Event(), {"ok": 0, "switched": 0}
        loops = [asyncio.create_task(_player_loop(urls, p, stop, log)) for p in players]
        ws_feed = asyncio.create_task(_ws_follower(urls, players[0]["access_token"]))
        sse_feed = asyncio.create_task(_sse_follower(urls))
        await asyncio.sleep(1.0)
        started = time.monotonic()
        leaving.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(leaving.process.wait, 20)
        stopped_in = time.monotonic() - started
        await asyncio.sleep(1.0)
        stop.set()
        told = sum(await asyncio.gather(*loops))
        ws_close, ws_after = await asyncio.wait_for(ws_feed, 10)
        sse_ended, sse_after = await asyncio.wait_for(sse_feed, 10)
        async with httpx.AsyncClient(base_url=staying.url, timeout=10) as http:
            top = (await http.get("/leaderboard/top10")).json()["data"]["leaderboard"]
    assert code == 0 and stopped_in < 12, (code, stopped_in)
    assert log["ok"] > 20
    assert sum(entry["score"] for entry in top) == told  # nothing lost, nothing twice
    assert ws_close == 1001 and ws_after  # going away; the board again from the other
    assert sse_ended and sse_after
    log_text = leaving.log_path.read_text()
    assert "ASGI callable returned without completing response" not in log_text


async def _ws_follower(urls: list[str], access: str) -> tuple[int | None, bool]:
    """The close code from the first server, and whether the second then sent a board."""
    token = f"/ws/leaderboard?token={access}"
    code = None
    try:
        async with connect(urls[0].replace("http", "ws") + token) as ws:
            await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
            while True:
                await ws.recv()
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
    async with connect(urls[1].replace("http", "ws") + token) as ws:
        await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
    return code, message.get("type") == "leaderboard_update"


async def _sse_follower(urls: list[str]) -> tuple[bool, bool]:
    """Whether the first server ended the stream cleanly, and the second sent a board."""
    ended = False
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, read=30)) as http:
        try:
            async with http.stream("GET", f"{urls[0]}/sse/leaderboard") as stream:
                async for _ in stream.aiter_lines():
                    pass
            ended = True
        except httpx.HTTPError:
            ended = False
        async with http.stream("GET", f"{urls[1]}/sse/leaderboard") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    return ended, True
    return ended, False


def test_a_server_stopped_by_sigterm_exits_0(settings: Settings, tmp_path: Path) -> None:
    with serving(server_env(settings), tmp_path) as (server,):
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(15) == 0
