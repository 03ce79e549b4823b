"""Action tokens, score updates and reads through the app, on real Redis and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from scoreboard.api.app import create_app
from scoreboard.api.services import Services
from scoreboard.core.settings import RateRule, Settings
from tests.auth_helpers import bearer, error_code, issue_token, new_player, register, submit

GENEROUS = RateRule(100_000, 60)

pytestmark = pytest.mark.both_topologies


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        action_types={"game_completion": 100, "quick_round": 50},
        rate_limit_score_update=GENEROUS,
        rate_limit_action_token=GENEROUS,
        rate_limit_leaderboard=GENEROUS,
    )


async def _post_update(
    http: httpx.AsyncClient, access: str, token: str, body: Any
) -> httpx.Response:
    headers = {**bearer(access), "X-Action-Token": token}
    if isinstance(body, bytes):
        headers["content-type"] = "application/json"
        return await http.post("/scores/update", content=body, headers=headers)
    return await http.post("/scores/update", json=body, headers=headers)


@pytest.mark.cluster_in_ci
async def test_the_spec_load_scenario_as_artillery_sends_it(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    issued = await client.post(
        "/auth/action-token",
        json={"action_type": "game_completion", "session_id": "Xk2pQ9"},
        headers=bearer(player["access_token"]),
    )
    assert issued.status_code == 200
    data = issued.json()["data"]
    assert set(data) == {"action_token", "expires_in", "max_score_increase"}
    assert (data["expires_in"], data["max_score_increase"]) == (300, 100)
    assert len(data["action_token"]) >= 43
    assert issued.headers["ratelimit-limit"] == str(GENEROUS.limit)

    response = await _post_update(
        client,
        player["access_token"],
        data["action_token"],
        {"score_increase": "52", "action_type": "game_completion"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "data": {
            "new_score": 52,
            "score_increase": 52,
            "rank": 1,
            "user_id": player["user_id"],
            "board": "global",
            "periods": {},
        },
    }
    assert "ratelimit-remaining" in response.headers


async def test_spec_security_invalid_action_token(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    response = await _post_update(
        client, player["access_token"], "invalid_token", {"score_increase": 50}
    )
    assert response.status_code == 400
    assert error_code(response) == "INVALID_ACTION_TOKEN"


async def test_spec_security_increase_above_maximum(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    token = await issue_token(client, player["access_token"], action_type="quick_round")
    response = await _post_update(client, player["access_token"], token, {"score_increase": 100})
    assert response.status_code == 400
    assert error_code(response) == "SCORE_VALIDATION_FAILED"
    assert response.json()["error"]["details"]["reason"] == "above_max"


@pytest.mark.cluster_in_ci
async def test_a_spent_token_with_another_request_is_refused(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    token = await issue_token(client, player["access_token"])
    first = await _post_update(client, player["access_token"], token, {"score_increase": 10})
    replay = await _post_update(client, player["access_token"], token, {"score_increase": 11})
    assert first.status_code == 200
    assert replay.status_code == 400 and error_code(replay) == "INVALID_ACTION_TOKEN"
    assert replay.json()["error"]["details"]["reason"] == "already_used"


@pytest.mark.cluster_in_ci
async def test_a_retry_after_a_lost_answer_gets_the_same_answer(
    client: httpx.AsyncClient,
) -> None:
    """A client whose answer was lost retries with the same token and body: it gets the
    answer it missed (was: 400 already_used, so it could not know), counted once."""
    player, rival = await new_player(client), await new_player(client)
    token = await issue_token(client, player["access_token"])
    body = {"score_increase": "10", "action_data": {"level": 2}}
    first = await _post_update(client, player["access_token"], token, body)
    rival_token = await issue_token(client, rival["access_token"])
    await _post_update(client, rival["access_token"], rival_token, {"score_increase": 50})
    again = await _post_update(client, player["access_token"], token, body)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    standing = await client.get(f"/scores/user/{player['user_id']}")
    assert standing.json()["data"]["current_score"] == 10


async def test_a_token_of_another_player_is_refused(client: httpx.AsyncClient) -> None:
    owner, thief = await new_player(client), await new_player(client)
    token = await issue_token(client, owner["access_token"])
    stolen = await _post_update(client, thief["access_token"], token, {"score_increase": 10})
    assert stolen.status_code == 400 and error_code(stolen) == "INVALID_ACTION_TOKEN"
    mine = await _post_update(client, owner["access_token"], token, {"score_increase": 10})
    assert mine.status_code == 200


async def test_a_session_mismatch_is_refused(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    token = await issue_token(client, player["access_token"], session_id="one")
    response = await _post_update(
        client, player["access_token"], token, {"score_increase": 10, "session_id": "two"}
    )
    assert response.status_code == 400 and error_code(response) == "INVALID_ACTION_TOKEN"


@pytest.mark.parametrize(
    "raw",
    [
        b"0",
        b"-1",
        b"1.5",
        b"1e-3",
        b"2.5e0",
        b"1e400",
        b"9007199254740992.0",
        b"true",
        b"null",
        b"NaN",
        b"Infinity",
        b"9007199254740992",
        b"9007199254740993",
        b"9" * 5000,
        b'" 10"',
        b'"+10"',
        b'"1e3"',
        b'"0x10"',
        b'"10.0"',
        b'"0"',
        b'"0052"',
        b'"10\\n"',
        b'"\xd9\xa1"',
        b"[10]",
        b'{"n": 10}',
    ],
)
async def test_bad_increases_are_invalid_requests_and_change_nothing(
    client: httpx.AsyncClient, services: Services, raw: bytes
) -> None:
    player = await new_player(client)
    token = await issue_token(client, player["access_token"])
    body = b'{"score_increase": ' + raw + b"}"
    response = await _post_update(client, player["access_token"], token, body)
    assert response.status_code == 400, response.text
    assert error_code(response) == "INVALID_REQUEST"
    ok = await _post_update(client, player["access_token"], token, {"score_increase": 7})
    assert ok.status_code == 200 and ok.json()["data"]["new_score"] == 7


async def test_duplicate_keys_and_unknown_fields_are_refused(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    token = await issue_token(client, player["access_token"])
    for body in (
        b'{"score_increase": 1, "score_increase": 100}',
        b'{"score_increase": 1, "score": 1000}',
        b'{"score_increase": 1, "user_id": "someone"}',
        b"{}",
    ):
        response = await _post_update(client, player["access_token"], token, body)
        assert response.status_code == 400 and error_code(response) == "INVALID_REQUEST"


@pytest.mark.parametrize(
    "action_data",
    [
        b'{"accuracy": 1.5}',
        b'{"accuracy": "high"}',
        b'{"time_taken": 0}',
        b'{"time_taken": -3}',
        b'{"time_taken": 1e400}',
        b'{"level": -1}',
        b'{"level": 2.5}',
        b'{"level": true}',
        b'"not an object"',
        b'{"level": 5, "speed": 3}',
        b'{"Level": 5}',
        b'{"time_taken": 10, "accuracy": 0.5, "timeTaken": 1}',
    ],
)
async def test_action_data_is_validated(client: httpx.AsyncClient, action_data: bytes) -> None:
    player = await new_player(client)
    token = await issue_token(client, player["access_token"])
    body = b'{"score_increase": 10, "action_data": ' + action_data + b"}"
    response = await _post_update(client, player["access_token"], token, body)
    assert response.status_code == 400 and error_code(response) == "INVALID_REQUEST"


@pytest.mark.parametrize(("raw", "counted"), [(b"5.0", 5), (b"5e1", 50), (b"1E1", 10)])
async def test_a_whole_number_with_a_fraction_or_exponent_is_that_number(
    client: httpx.AsyncClient, raw: bytes, counted: int
) -> None:
    """Was: refused, although the document (JSON Schema's integer) accepts it."""
    player = await new_player(client)
    token = await issue_token(client, player["access_token"])
    body = b'{"score_increase": ' + raw + b"}"
    response = await _post_update(client, player["access_token"], token, body)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["new_score"] == counted


async def test_the_spec_example_update_body_is_accepted(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    response = await submit(
        client,
        player,
        50,
        action_type="game_completion",
        session_id="session-1",
        action_data={"level": 5, "time_taken": 120, "accuracy": 0.95},
    )
    assert response.status_code == 200, response.text


async def test_a_missing_action_token_header(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    response = await client.post(
        "/scores/update", json={"score_increase": 5}, headers=bearer(player["access_token"])
    )
    assert response.status_code == 400 and error_code(response) == "INVALID_ACTION_TOKEN"


async def test_an_update_needs_an_access_token(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/scores/update", json={"score_increase": 5}, headers={"X-Action-Token": "x"}
    )
    assert response.status_code == 401 and error_code(response) == "INVALID_TOKEN"


@pytest.mark.parametrize(
    "body",
    [
        {"action_type": "unknown_kind", "session_id": "s"},
        {"action_type": "game_completion"},
        {"action_type": "game_completion", "session_id": ""},
        {"action_type": "game_completion", "session_id": "has space"},
        {"action_type": "game_completion", "session_id": "s", "timestamp": "yesterday"},
        {"action_type": "game_completion", "session_id": "s", "extra": 1},
    ],
)
async def test_bad_action_token_requests(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    player = await new_player(client)
    response = await client.post(
        "/auth/action-token", json=body, headers=bearer(player["access_token"])
    )
    assert response.status_code == 400 and error_code(response) == "INVALID_REQUEST"


async def test_action_token_with_timestamp(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    response = await client.post(
        "/auth/action-token",
        json={
            "action_type": "game_completion",
            "session_id": "s",
            "timestamp": "2026-11-26T10:00:00Z",
        },
        headers=bearer(player["access_token"]),
    )
    assert response.status_code == 200


async def test_user_score_route(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    idle = await register(client)
    await submit(client, player, 30)
    scored = (await client.get(f"/scores/user/{player['user_id']}")).json()["data"]
    assert scored["current_score"] == 30 and scored["rank"] >= 1
    assert scored["username"] == player["username"] and scored["last_updated"].endswith("Z")
    unscored = (await client.get(f"/v1/scores/user/{idle['user_id']}")).json()["data"]
    assert (unscored["current_score"], unscored["rank"], unscored["username"]) == (
        0,
        None,
        idle["username"],
    )
    missing = await client.get(f"/scores/user/{uuid.uuid4()}")
    assert missing.status_code == 404 and error_code(missing) == "USER_NOT_FOUND"
    malformed = await client.get("/scores/user/not-a-uuid")
    assert malformed.status_code == 400 and error_code(malformed) == "INVALID_REQUEST"


async def _seed(client: httpx.AsyncClient, points: list[int]) -> list[dict[str, Any]]:
    players = []
    for value in points:
        player = await new_player(client)
        assert (await submit(client, player, value)).status_code == 200
        players.append(player)
    return players


@pytest.mark.cluster_in_ci
async def test_top10_paging_and_around_agree(client: httpx.AsyncClient) -> None:
    players = await _seed(client, [5, 90, 40, 40, 70, 10, 20, 30, 60, 80, 50, 100])
    top = (await client.get("/leaderboard/top10")).json()["data"]
    assert top["total_players"] == 12
    assert [e["score"] for e in top["leaderboard"]] == [100, 90, 80, 70, 60, 50, 40, 40, 30, 20]
    assert [e["rank"] for e in top["leaderboard"]] == list(range(1, 11))
    first_forty = players[2]["user_id"]
    assert [e["user_id"] for e in top["leaderboard"][6:8]] == [first_forty, players[3]["user_id"]]

    page = (await client.get("/leaderboard?limit=5&offset=8")).json()["data"]
    assert [(e["rank"], e["score"]) for e in page["leaderboard"]] == [
        (9, 30),
        (10, 20),
        (11, 10),
        (12, 5),
    ]
    around = (await client.get(f"/leaderboard/around/{first_forty}?radius=1")).json()["data"]
    assert around["rank"] == 7
    assert [(e["rank"], e["score"]) for e in around["leaderboard"]] == [(6, 50), (7, 40), (8, 40)]
    for entry in top["leaderboard"] + page["leaderboard"]:
        standing = (await client.get(f"/scores/user/{entry['user_id']}")).json()["data"]
        assert (standing["rank"], standing["current_score"]) == (entry["rank"], entry["score"])


async def test_paging_and_around_validate_their_parameters(client: httpx.AsyncClient) -> None:
    for query in ("limit=0", "limit=101", "offset=-1", "limit=abc", "limit=%D9%A1"):
        response = await client.get(f"/leaderboard?{query}")
        assert response.status_code == 400 and error_code(response) == "INVALID_REQUEST", query
    response = await client.get(f"/leaderboard/around/{uuid.uuid4()}")
    assert response.status_code == 404 and error_code(response) == "USER_NOT_FOUND"
    idle = await register(client)
    unranked = (await client.get(f"/leaderboard/around/{idle['user_id']}")).json()["data"]
    assert unranked["rank"] is None and unranked["leaderboard"] == []


@pytest.mark.cluster_in_ci
async def test_a_writer_reads_its_own_write(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    await client.get("/leaderboard/top10")
    response = await submit(client, player, 99)
    assert response.json()["data"]["rank"] == 1
    top = (await client.get("/leaderboard/top10")).json()["data"]
    assert top["leaderboard"][0]["user_id"] == player["user_id"]
    assert top["leaderboard"][0]["score"] == 99


@pytest_asyncio.fixture
async def strict_reads(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    services.settings = dataclasses.replace(
        services.settings, rate_limit_leaderboard=RateRule(3, 60)
    )
    app = create_app(services.settings)
    app.state.services = services
    transport = httpx.ASGITransport(app=app, client=("198.51.100.20", 1000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


async def test_a_busy_readers_reads_are_counted_in_redis_a_few_at_a_time(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    counted = services.scripts.rate_limit
    calls = []

    async def counting(key: str, rule: RateRule, wanted: int = 1, returned: int = 0) -> Any:
        calls.append(wanted)
        if (wanted, returned) == (1, 0):
            return await counted(key, rule)
        return await counted(key, rule, wanted, returned)

    monkeypatch.setattr(services.scripts, "rate_limit", counting)
    responses = [await client.get("/leaderboard/top10") for _ in range(100)]
    assert {response.status_code for response in responses} == {200}
    assert len(calls) <= 10, calls  # not one Redis round trip per read
    remaining = [int(response.headers["ratelimit-remaining"]) for response in responses]
    assert all(0 <= left < GENEROUS.limit for left in remaining)


async def test_reads_are_limited_per_address(strict_reads: httpx.AsyncClient) -> None:
    statuses = [(await strict_reads.get("/leaderboard/top10")).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await strict_reads.get("/leaderboard?limit=5")
    assert error_code(limited) == "RATE_LIMIT_EXCEEDED"
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit-remaining"] == "0"
