"""A board's own anti-cheat rules per action type, through the admin API and the score
update (anti-cheat on, enforcing)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scoreboard.api.services import Services
from scoreboard.core.settings import Settings
from tests.auth_helpers import bearer, new_player
from tests.boards.test_boards_api import SPEEDRUN, _admin, _create
from tests.conftest import unthrottled


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return unthrottled(settings, own_database)


async def _play_claiming(
    http: httpx.AsyncClient, player: dict[str, Any], increase: int, action_data: dict[str, Any]
) -> httpx.Response:
    issued = await http.post(
        "/v1/auth/action-token",
        json={"action_type": "run", "session_id": "s1", "board": "speedrun"},
        headers=bearer(player["access_token"]),
    )
    assert issued.status_code == 200, issued.text
    return await http.post(
        "/v1/scores/update",
        json={"score_increase": increase, "action_data": action_data},
        headers={
            **bearer(player["access_token"]),
            "X-Action-Token": issued.json()["data"]["action_token"],
        },
    )


async def test_a_board_carries_its_own_anticheat_rules_per_action_type(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    rules = {"run": {"levels": [1, 20], "time_taken": "required", "points_per_second": 50}}
    created = await _create(client, admin, {**SPEEDRUN, "anticheat": rules})
    assert created.status_code == 201, created.text
    assert created.json()["data"]["anticheat"] == rules
    listed = (await client.get("/v1/boards")).json()["data"]
    assert next(b for b in listed if b["name"] == "speedrun")["anticheat"] == rules

    player = await new_player(client)
    missing = await _play_claiming(client, player, 10, {"level": 3})
    assert missing.json()["error"]["details"]["reason"] == "missing_duration"
    too_high = await _play_claiming(client, player, 10, {"level": 21, "time_taken": 5.0})
    assert too_high.json()["error"]["details"]["reason"] == "impossible_level"
    # 250 points in 5 s: 50 a second is this board's rate (the default would flag it)
    fine = await _play_claiming(client, player, 250, {"level": 1, "time_taken": 5.0})
    assert fine.status_code == 200, fine.text

    headers = bearer(admin["access_token"])
    relaxed = await client.patch(
        "/v1/admin/boards/speedrun",
        json={"anticheat": {"run": {"time_taken": "optional"}}},
        headers=headers,
    )
    assert relaxed.json()["data"]["anticheat"] == {"run": {"time_taken": "optional"}}
    unclaimed = await _play_claiming(client, player, 10, {"level": 99})
    assert unclaimed.status_code == 200, unclaimed.text


@pytest.mark.parametrize(
    "rules",
    [
        {"jump": {"levels": [1, 2]}},  # not one of the board's action types
        {"run": {"levels": [5, 1]}},
        {"run": {"levels": [1]}},
        {"run": {"time_taken": "sometimes"}},
        {"run": {"points_per_second": 0}},
        {"run": {"speed": 3}},
    ],
)
async def test_bad_anticheat_rules_are_a_clear_400_and_change_nothing(
    client: httpx.AsyncClient, services: Services, rules: dict[str, Any]
) -> None:
    admin = await _admin(client, services)
    refused = await _create(client, admin, {**SPEEDRUN, "anticheat": rules})
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "INVALID_REQUEST"
    assert (await client.get("/v1/boards/speedrun/leaderboard")).status_code == 404
