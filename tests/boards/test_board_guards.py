"""A server process holding many boards checks them at a bounded rate (was: one guard
task per board, each checking Redis every second, so 10,000 boards cost the server
10,000 Redis transactions a second and its requests waited past the Redis timeout),
and still heals a board a script found lost at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from scoreboard.api.services import Services
from scoreboard.boards.guard import CHECK_SECONDS, VISITS_PER_SECOND
from scoreboard.core.settings import Settings
from scoreboard.storage.keys import BoardKeys
from tests.auth_helpers import bearer, new_player
from tests.conftest import add_empty_boards, asgi_client, unthrottled

BOARDS = 1_000


@pytest_asyncio.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return unthrottled(settings, own_database, anticheat_mode="off", max_boards=BOARDS + 10)


@pytest_asyncio.fixture
async def many_boards(services: Services) -> AsyncIterator[Services]:
    await add_empty_boards(services, BOARDS)
    yield services


def _count_checks(services: Services) -> list[str]:
    """The boards checked from now on, in order."""
    checked: list[str] = []
    original = services.scripts.check_board

    async def counting(board: BoardKeys) -> Any:
        checked.append(board.name)
        return await original(board)

    services.scripts.check_board = counting  # type: ignore[method-assign]
    return checked


async def test_checks_stay_bounded_however_many_boards(many_boards: Services) -> None:
    checked = _count_checks(many_boards)
    await asyncio.sleep(3 * CHECK_SECONDS)
    per_second = len(checked) / (3 * CHECK_SECONDS)
    assert per_second <= VISITS_PER_SECOND * 1.5, per_second
    assert len(set(checked)) >= 2 * VISITS_PER_SECOND * 0.8  # the round moves on


async def test_a_board_a_script_found_lost_is_healed_at_once(many_boards: Services) -> None:
    services = many_boards
    board = f"board-{BOARDS // 2}"
    async with asgi_client(services) as http:
        player = await new_player(http)
        await services.redis.delete(services.keys.board_state(board))
        issued = await http.post(
            "/v1/auth/action-token",
            json={"action_type": "run", "session_id": "s", "board": board},
            headers=bearer(player["access_token"]),
        )
        started = time.monotonic()
        if issued.status_code == 200:
            await http.post(
                "/v1/scores/update",
                json={"score_increase": 3},
                headers={
                    **bearer(player["access_token"]),
                    "X-Action-Token": issued.json()["data"]["action_token"],
                },
            )
        while not await services.redis.exists(services.keys.board_state(board)):
            assert time.monotonic() - started < CHECK_SECONDS, "the lost board waited its turn"
            await asyncio.sleep(0.02)
