"""Score updates against real `scoreboard serve` processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from scoreboard.core.settings import Settings
from scoreboard.storage.keys import Keys
from tests.auth_helpers import bearer, error_code, issue_token, new_player
from tests.conftest import RunningServer, server_env, serving

GENEROUS = "100000/minute"


@pytest.fixture
def scoring_server(settings: Settings, tmp_path: Path) -> Iterator[RunningServer]:
    env = server_env(
        settings,
        SCOREBOARD_RATE_LIMIT_SCORE_UPDATE=GENEROUS,
        SCOREBOARD_RATE_LIMIT_ACTION_TOKEN=GENEROUS,
        SCOREBOARD_RATE_LIMIT_LEADERBOARD=GENEROUS,
    )
    with serving(env, tmp_path) as (server,):
        yield server


def _board_state(settings: Settings) -> tuple[list[tuple[bytes, float]], int]:
    """The board, and how many score events (applied or refused) its stream holds;
    the security events beside them (spent tokens presented again) are not counted."""
    keys = Keys(settings.redis_prefix)
    assert settings.redis_url
    client = redis.Redis.from_url(settings.redis_url)
    try:
        board = client.zrange(keys.leaderboard(), 0, -1, withscores=True)
        entries = client.xrange(keys.events())
        return board, sum(fields[b"type"] != b"audit" for _, fields in entries)
    finally:
        client.close()


async def test_fifty_parallel_submissions_of_one_token_apply_once(
    scoring_server: RunningServer, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=scoring_server.url, timeout=30) as http:
        player = await new_player(http)
        token = await issue_token(http, player["access_token"])
        headers = {**bearer(player["access_token"]), "X-Action-Token": token}
        responses = await asyncio.gather(
            *(
                http.post("/scores/update", json={"score_increase": 1 + n}, headers=headers)
                for n in range(50)
            )
        )
        token = await issue_token(http, player["access_token"])
        headers = {**bearer(player["access_token"]), "X-Action-Token": token}
        retries = await asyncio.gather(
            *(
                http.post("/scores/update", json={"score_increase": 7}, headers=headers)
                for _ in range(50)
            )
        )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [400] * 49
    assert all(
        error_code(response) == "INVALID_ACTION_TOKEN"
        for response in responses
        if response.status_code == 400
    )
    winner = next(r for r in responses if r.status_code == 200).json()["data"]
    assert {r.status_code for r in retries} == {200}
    assert len({r.text for r in retries}) == 1  # the same request, the same answer
    board, events = await asyncio.to_thread(_board_state, settings)
    assert [score for _, score in board] == [winner["new_score"] + 7.0]
    assert events == 2


async def test_rate_limit_is_exact_under_parallel_load(settings: Settings, tmp_path: Path) -> None:
    env = server_env(
        settings,
        SCOREBOARD_RATE_LIMIT_SCORE_UPDATE="10/minute",
        SCOREBOARD_RATE_LIMIT_ACTION_TOKEN=GENEROUS,
        SCOREBOARD_MAX_OPEN_ACTION_TOKENS="40",
    )
    with serving(env, tmp_path, workers=2) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            player = await new_player(http)
            tokens = [await issue_token(http, player["access_token"]) for _ in range(40)]
            responses = await asyncio.gather(
                *(
                    http.post(
                        "/scores/update",
                        json={"score_increase": 1},
                        headers={**bearer(player["access_token"]), "X-Action-Token": token},
                    )
                    for token in tokens
                )
            )
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 30
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-limit"] == "10"
    board, _ = await asyncio.to_thread(_board_state, settings)
    assert [score for _, score in board] == [10.0]


async def test_another_process_follows_the_top10(settings: Settings, tmp_path: Path) -> None:
    env = server_env(
        settings,
        SCOREBOARD_RATE_LIMIT_SCORE_UPDATE=GENEROUS,
        SCOREBOARD_RATE_LIMIT_ACTION_TOKEN=GENEROUS,
        SCOREBOARD_RATE_LIMIT_LEADERBOARD=GENEROUS,
    )
    with serving(env, tmp_path, count=2) as (writer, reader):
        async with (
            httpx.AsyncClient(base_url=writer.url, timeout=30) as w,
            httpx.AsyncClient(base_url=reader.url, timeout=30) as r,
        ):
            assert (await r.get("/leaderboard/top10")).json()["data"]["leaderboard"] == []
            player = await new_player(w)
            token = await issue_token(w, player["access_token"])
            await w.post(
                "/scores/update",
                json={"score_increase": 42},
                headers={**bearer(player["access_token"]), "X-Action-Token": token},
            )
            deadline = time.monotonic() + 2
            seen: list[dict[str, object]] = []
            while time.monotonic() < deadline and not seen:
                seen = (await r.get("/leaderboard/top10")).json()["data"]["leaderboard"]
                await asyncio.sleep(0.02)
    assert [(e["user_id"], e["score"]) for e in seen] == [(player["user_id"], 42)]


async def test_the_spec_security_tests_over_http(scoring_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=scoring_server.url, timeout=30) as http:
        player = await new_player(http)
        invalid = await http.post(
            "/scores/update",
            json={"score_increase": 50},
            headers={**bearer(player["access_token"]), "X-Action-Token": "invalid_token"},
        )
        assert invalid.status_code == 400
        assert invalid.json()["error"]["code"] == "INVALID_ACTION_TOKEN"

        token = await issue_token(http, player["access_token"])
        above = await http.post(
            "/scores/update",
            json={"score_increase": 101},
            headers={**bearer(player["access_token"]), "X-Action-Token": token},
        )
        assert above.status_code == 400
        assert above.json()["error"]["code"] == "SCORE_VALIDATION_FAILED"
