"""The anti-cheat and admin flow as a new operator would try it, on real processes:
two servers, a syncer, an admin made with `scoreboard users create --admin`, a bot, a
watcher with the live board open on the other server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from scoreboard.core.settings import Settings
from tests.auth_helpers import PASSWORD, bearer, create_admin, login, new_player, submit
from tests.conftest import RunningServer, server_env, serving
from tests.deployment import FAST_SYNC, SyncerProcess

BOT_DATA = {"level": 1, "time_taken": 0.01, "accuracy": 1.0}


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return dataclasses.replace(settings, database_url=own_database)


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return server_env(settings, **{**FAST_SYNC, "SCOREBOARD_ANTICHEAT_MODE": "enforce"})


@pytest.fixture
def two_servers(env: dict[str, str], tmp_path: Path) -> Iterator[list[RunningServer]]:
    syncer = SyncerProcess(env, tmp_path)
    try:
        with serving(env, tmp_path, count=2) as servers:
            yield servers
    finally:
        syncer.stop()


def _ws_url(server: RunningServer, token: str) -> str:
    return server.url.replace("http://", "ws://") + f"/ws/leaderboard?token={token}"


async def _board_update(ws: ClientConnection, within: float = 3.0) -> list[str]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), within))
        if message["type"] == "leaderboard_update":
            return [entry["user_id"] for entry in message["data"]["leaderboard"]]


async def _until(predicate: Any, within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.2)


async def test_a_bot_is_caught_found_banned_and_unbanned(
    two_servers: list[RunningServer], env: dict[str, str], tmp_path: Path
) -> None:
    first, second = two_servers
    admin_name = create_admin(env, tmp_path)
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=30) as a,
        httpx.AsyncClient(base_url=second.url, timeout=30) as b,
    ):
        honest, watcher, bot = await new_player(a), await new_player(b), await new_player(a)
        data = {"time_taken": 10.0, "level": 3, "accuracy": 0.8}
        assert (await submit(a, honest, 30, action_data=data)).status_code == 200

        statuses = [
            (await submit(a, bot, 100, action_data=BOT_DATA)).status_code for _ in range(10)
        ]
        assert statuses == [200] * 2 + [400] * 8  # flagged, then rejected

        admin = await login(a, admin_name)
        headers = bearer(admin["access_token"])

        async def flagged() -> list[dict[str, Any]]:
            page = await a.get("/v1/admin/flagged", headers=headers)
            items: list[dict[str, Any]] = page.json()["data"]["items"]
            return items if len(items) == 10 else []

        items = await _until(flagged)
        assert {item["user_id"] for item in items} == {bot["user_id"]}

        async with (
            connect(_ws_url(second, watcher["access_token"])) as watching,
            connect(_ws_url(second, bot["access_token"])) as bots_page,
        ):
            for ws in (watching, bots_page):
                await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
            assert (await _board_update(watching))[0] == bot["user_id"]
            await _board_update(bots_page)

            started = time.monotonic()
            banned = await a.post(
                f"/v1/admin/players/{bot['user_id']}/ban", json={"reason": "bot"}, headers=headers
            )
            assert banned.status_code == 200
            board = await _board_update(watching, within=1.0)
            assert bot["user_id"] not in board and time.monotonic() - started < 1.0
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(bots_page.recv(), 3)
            assert bots_page.close_code == 1008

            top = (await b.get("/v1/leaderboard/top10")).json()["data"]["leaderboard"]
            assert bot["user_id"] not in [entry["user_id"] for entry in top]
            token = await a.post(
                "/v1/auth/action-token",
                json={"action_type": "game_completion", "session_id": "s"},
                headers=bearer(bot["access_token"]),
            )
            assert token.status_code == 401
            relog = await a.post(
                "/v1/auth/login", json={"username": bot["username"], "password": PASSWORD}
            )
            assert relog.status_code == 403

            unbanned = await b.post(f"/v1/admin/players/{bot['user_id']}/unban", headers=headers)
            assert unbanned.status_code == 200
            assert (await _board_update(watching, within=1.0))[0] == bot["user_id"]

        async def audited() -> list[str]:
            page = await a.get(f"/v1/admin/audit?user_id={bot['user_id']}", headers=headers)
            kinds = [item["event_type"] for item in page.json()["data"]["items"]]
            return kinds if "admin_unban" in kinds else []

        kinds = await _until(audited)
        # the suspended account's refused login is in its own trail too
        assert kinds[:3] == ["admin_unban", "login_suspended", "admin_ban"]
        assert kinds.count("score_update") == 2 and kinds.count("score_rejected") == 8
        refused = await b.get("/v1/admin/audit", headers=bearer(watcher["access_token"]))
        assert refused.status_code == 403
