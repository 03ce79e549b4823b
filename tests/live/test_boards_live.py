"""Live feeds of other boards and of periods, against a real server process: several
subscriptions on one WebSocket, SSE with ?board=&period=; the followed ranking moves,
the global board's feed does not."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from scoreboard.core.settings import Settings
from tests.auth_helpers import bearer, create_admin, login, new_player
from tests.conftest import RunningServer, server_env, serving
from tests.live.test_live import _sse_events

GENEROUS = "100000/minute"

pytestmark = pytest.mark.both_topologies


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return dataclasses.replace(settings, database_url=own_database)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return server_env(
        settings,
        SCOREBOARD_RATE_LIMIT_SCORE_UPDATE=GENEROUS,
        SCOREBOARD_RATE_LIMIT_ACTION_TOKEN=GENEROUS,
        SCOREBOARD_RATE_LIMIT_LEADERBOARD=GENEROUS,
        SCOREBOARD_BROADCAST_INTERVAL_MS="100",
        SCOREBOARD_ANTICHEAT_MODE="off",
    )


@pytest.fixture
def live_server(env: dict[str, str], tmp_path: Path) -> Iterator[RunningServer]:
    with serving(env, tmp_path) as (server,):
        yield server


async def _updates(ws: ClientConnection, within: float) -> list[dict[str, Any]]:
    """Every leaderboard update that arrives within `within` seconds."""
    got = []
    try:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), within))
            if message["type"] == "leaderboard_update":
                got.append(message["data"])
    except TimeoutError:
        return got


async def _play(http: httpx.AsyncClient, player: dict[str, Any], board: str, score: int) -> None:
    body = {"action_type": "run", "session_id": "s1", "board": board}
    if board == "global":
        body = {"action_type": "game_completion", "session_id": "s1"}
    issued = await http.post(
        "/v1/auth/action-token", json=body, headers=bearer(player["access_token"])
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["data"]["action_token"]
    answer = await http.post(
        "/v1/scores/update",
        json={"score_increase": score},
        headers={**bearer(player["access_token"]), "X-Action-Token": token},
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.cluster_in_ci
async def test_a_period_feed_moves_while_global_does_not(
    live_server: RunningServer, env: dict[str, str], tmp_path: Path
) -> None:
    admin_name = create_admin(env, tmp_path)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        admin = await login(http, admin_name)
        created = await http.post(
            "/v1/admin/boards",
            json={"name": "speedrun", "action_types": {"run": 500}, "periods": ["daily"]},
            headers=bearer(admin["access_token"]),
        )
        assert created.status_code == 201, created.text
        watcher, runner = await new_player(http), await new_player(http)
        url = live_server.url.replace("http://", "ws://")
        async with connect(f"{url}/ws/leaderboard?token={watcher['access_token']}") as ws:
            await ws.send(json.dumps({"type": "subscribe_leaderboard"}))
            await ws.send(
                json.dumps(
                    {
                        "type": "subscribe_leaderboard",
                        "data": {"board": "speedrun", "period": "daily"},
                    }
                )
            )
            first = await _updates(ws, 1.0)
            assert {(u.get("board", "global"), u.get("period", "all")) for u in first} == {
                ("global", "all"),
                ("speedrun", "daily"),
            }
            daily = next(u for u in first if u.get("board") == "speedrun")
            assert daily["leaderboard"] == [] and daily["next_reset_at"].endswith("T00:00:00.000Z")

            async with http.stream(
                "GET", "/sse/leaderboard?board=speedrun&period=daily"
            ) as response:
                events = _sse_events(response)
                opening = json.loads((await asyncio.wait_for(anext(events), 3))["data"])
                assert opening["period_id"] == daily["period_id"]
                await _play(http, runner, "speedrun", 42)
                moved = json.loads((await asyncio.wait_for(anext(events), 3))["data"])
            assert [(e["user_id"], e["score"]) for e in moved["leaderboard"]] == [
                (runner["user_id"], 42)
            ]
            later = await _updates(ws, 1.0)
            assert later, "the period feed did not move"
            assert all(u.get("board") == "speedrun" for u in later)  # global did not move
            assert later[-1]["leaderboard"][0]["score"] == 42

            refused = await http.get("/sse/leaderboard?board=nope")
            assert refused.status_code == 404
            await ws.send(
                json.dumps(
                    {
                        "type": "subscribe_leaderboard",
                        "data": {"board": "global", "period": "daily"},
                    }
                )
            )
            error = json.loads(await asyncio.wait_for(ws.recv(), 3))
            assert error["type"] == "error" and error["error"]["code"] == "NOT_FOUND"


async def test_one_socket_follows_a_bounded_number_of_rankings(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Was: one WebSocket took 4,000 board/period subscriptions with no error."""
    limited = {**env, "SCOREBOARD_WS_MAX_SUBSCRIPTIONS": "3"}
    admin_name = create_admin(limited, tmp_path)
    with serving(limited, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            admin = await login(http, admin_name)
            for name in ("one", "two", "three"):
                created = await http.post(
                    "/v1/admin/boards",
                    json={"name": name, "action_types": {"run": 5}},
                    headers=bearer(admin["access_token"]),
                )
                assert created.status_code == 201, created.text
            watcher = await new_player(http)
        url = server.url.replace("http://", "ws://")
        async with connect(f"{url}/ws/leaderboard?token={watcher['access_token']}") as ws:
            for board in ("global", "one", "two", "three"):
                subscribe = {"type": "subscribe_leaderboard", "data": {"board": board}}
                await ws.send(json.dumps(subscribe))
            frames = []
            with pytest.raises(TimeoutError):
                while True:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), 1.0)))
            errors = [frame for frame in frames if frame["type"] == "error"]
            assert len(errors) == 1
            assert errors[0]["error"]["details"] == {"reason": "subscription_limit", "limit": 3}
            followed = {f["data"].get("board", "global") for f in frames if f is not errors[0]}
            assert followed == {"global", "one", "two"}
            await ws.send(json.dumps({"type": "ping"}))  # the socket is still served
            assert json.loads(await asyncio.wait_for(ws.recv(), 3)) == {"type": "pong"}


async def test_a_period_ranking_moves_at_once_not_at_the_next_poll(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Was: every ranking but the default board's all-time one was read once per
    broadcast interval (a poller), so a change showed up to an interval late."""
    slow = {**env, "SCOREBOARD_BROADCAST_INTERVAL_MS": "4000"}
    admin_name = create_admin(slow, tmp_path)
    with serving(slow, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            admin = await login(http, admin_name)
            created = await http.post(
                "/v1/admin/boards",
                json={"name": "sprint", "action_types": {"run": 500}, "periods": ["weekly"]},
                headers=bearer(admin["access_token"]),
            )
            assert created.status_code == 201, created.text
            runner = await new_player(http)
            async with http.stream("GET", "/sse/leaderboard?board=sprint&period=weekly") as answer:
                events = _sse_events(answer)
                await asyncio.wait_for(anext(events), 3)  # the opening state
                await asyncio.sleep(4.5)  # a quiet stretch longer than the interval
                started = asyncio.get_running_loop().time()
                await _play(http, runner, "sprint", 7)
                moved = json.loads((await asyncio.wait_for(anext(events), 6))["data"])
                took = asyncio.get_running_loop().time() - started
    assert [(e["user_id"], e["score"]) for e in moved["leaderboard"]] == [(runner["user_id"], 7)]
    assert took < 2.0, f"the change took {took:.1f}s: it waited for a poll"
