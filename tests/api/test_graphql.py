"""`/graphql`: the board reads as GraphQL (the same answers as the REST routes), its
limits (depth, aliases, the read rate limit with 429), its errors in the service's
codes, introspection off by setting, malformed requests in the service's envelope,
and a ranking followed over graphql-transport-ws while a player scores."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from scoreboard.api.services import Services
from scoreboard.core.settings import RateRule, Settings
from tests.auth_helpers import new_player, submit
from tests.conftest import add_empty_boards, server_env, serving, unthrottled


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return unthrottled(settings, own_database, anticheat_mode="off")


async def _ask(http: httpx.AsyncClient, query: str, **variables: Any) -> httpx.Response:
    return await http.post("/graphql", json={"query": query, "variables": variables})


def _data(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def _codes(response: httpx.Response) -> list[str]:
    return [error.get("extensions", {}).get("code", "") for error in response.json()["errors"]]


async def test_the_reads_answer_what_the_rest_routes_answer(
    client: httpx.AsyncClient, services: Services
) -> None:
    await add_empty_boards(services, 0, "cup")
    await services.pool.execute("UPDATE boards SET periods = '{daily}' WHERE name = 'cup'")
    await services.catalog.refresh()
    players = [await new_player(client) for _ in range(3)]
    for increase, player in zip((30, 50, 40), players, strict=True):
        assert (await submit(client, player, increase)).status_code == 200

    data = _data(
        await _ask(
            client,
            '{ leaderboard(board: "global", period: "all", limit: 10)'
            " { rank userId username score } }",
        )
    )
    rest = (await client.get("/v1/leaderboard/top10")).json()["data"]["leaderboard"]
    assert data["leaderboard"] == [
        {"rank": e["rank"], "userId": e["user_id"], "username": e["username"], "score": e["score"]}
        for e in rest
    ]
    assert [e["score"] for e in data["leaderboard"]] == [50, 40, 30]

    page = _data(
        await _ask(
            client,
            "{ ranking(limit: 1, offset: 1) { totalPlayers period entries { rank score } } }",
        )
    )["ranking"]
    assert page == {"totalPlayers": 3, "period": "all", "entries": [{"rank": 2, "score": 40}]}

    me = players[0]["user_id"]
    around = _data(
        await _ask(
            client,
            "query ($me: ID!) { around(userId: $me, radius: 1) { rank entries { score } } }",
            me=me,
        )
    )["around"]
    assert around == {"rank": 3, "entries": [{"score": 40}, {"score": 30}]}
    standings = _data(
        await _ask(
            client,
            "query ($me: ID!) { player(userId: $me) { username standings { period score rank } } }",
            me=me,
        )
    )["player"]
    assert standings["username"] == players[0]["username"]
    assert standings["standings"] == [{"period": "all", "score": 30, "rank": 3}]

    boards = _data(await _ask(client, "{ boards { name periods { kind } } }"))["boards"]
    assert {"name": "cup", "periods": [{"kind": "daily"}]} in boards
    daily = _data(
        await _ask(client, '{ ranking(board: "cup", period: "daily") { periodId nextResetAt } }')
    )["ranking"]
    assert daily["periodId"].startswith("daily:") and daily["nextResetAt"].endswith("Z")


async def test_errors_carry_the_service_codes(client: httpx.AsyncClient) -> None:
    cases = {
        '{ ranking(board: "nope") { totalPlayers } }': "BOARD_NOT_FOUND",
        '{ ranking(period: "hourly") { totalPlayers } }': "NOT_FOUND",
        "{ ranking(limit: 101) { totalPlayers } }": "INVALID_REQUEST",
        '{ around(userId: "not-a-uuid") { rank } }': "INVALID_REQUEST",
        '{ player(userId: "7d9f1c52-8b1e-4a53-9b8e-3f0c2a7d9e41") { username } }': (
            "USER_NOT_FOUND"
        ),
        '{ history(board: "global", periodId: "yearly:2026") { totalPlayers } }': (
            "INVALID_REQUEST"
        ),
    }
    for query, code in cases.items():
        response = await _ask(client, query)
        assert response.status_code == 200, response.text
        assert response.json()["data"] is None
        assert _codes(response) == [code], (query, response.text)


async def test_tokens_aliases_and_malformed_requests_are_refused(client: httpx.AsyncClient) -> None:
    deep = "{ ranking { entries { " + "__typename " * 2 + "} } }"
    assert _data(await _ask(client, deep))  # within the limits
    fragments = "fragment E on Entry { rank } { ranking { entries { ...E } } } "
    assert _data(await client.post("/graphql", json={"query": fragments}))
    # the schema has no cycles (depth stays under the limit of 6 by itself); a query of
    # more than 1,000 tokens is refused before it is run
    long = "{ boards { " + "name " * 1000 + "} }"
    refused = await _ask(client, long)
    assert "token" in refused.json()["errors"][0]["message"].lower()
    aliased = "{ " + " ".join(f"a{i}: boards {{ name }}" for i in range(11)) + " }"
    refused = await _ask(client, aliased)
    assert "aliases" in refused.json()["errors"][0]["message"]

    for body, headers in (
        (b"not json", {"content-type": "application/json"}),
        (b'{"variables": {}}', {"content-type": "application/json"}),
        (b'{"query": "{ boards { name } }", "other": 1}', {"content-type": "application/json"}),
        (b'{"query": "{ boards { name } }"}', {"content-type": "text/plain"}),
    ):
        response = await client.post("/graphql", content=body, headers=headers)
        assert response.status_code in (400, 415), response.text
        assert response.json()["success"] is False
    over_http = await _ask(client, "subscription { leaderboard { totalPlayers } }")
    assert over_http.status_code == 400
    assert over_http.json()["error"]["details"]["reason"] == "subscription_over_http"
    assert (await client.post("/graphql", json={"query": "mutation { x }"})).status_code == 200
    assert (await client.get("/graphql")).status_code == 405


async def test_each_top_level_field_is_a_read_against_the_limit(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.settings = dataclasses.replace(
        services.settings, rate_limit_leaderboard=RateRule(3, 60)
    )
    two = await _ask(client, "{ boards { name } ranking { totalPlayers } }")
    assert _data(two) and two.headers["ratelimit-remaining"] == "1"
    assert _data(await _ask(client, "{ boards { name } }"))
    refused = await _ask(client, "{ boards { name } }")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert _codes(refused) == ["RATE_LIMIT_EXCEEDED"]


async def test_introspection_can_be_turned_off(settings: Settings, tmp_path: Path) -> None:
    query = {"query": "{ __schema { queryType { name } } }"}
    for setting, allowed in (("true", True), ("false", False)):
        env = server_env(settings, SCOREBOARD_GRAPHQL_INTROSPECTION=setting)
        with serving(env, tmp_path) as (server,):
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                answer = (await http.post("/graphql", json=query)).json()
        if allowed:
            assert answer["data"]["__schema"]["queryType"]["name"] == "Query"
        else:
            assert answer["data"] is None and "introspection" in answer["errors"][0]["message"]


async def test_a_subscription_follows_a_ranking_as_players_score(
    settings: Settings, tmp_path: Path
) -> None:
    with serving(server_env(settings), tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            first = await new_player(http)
            assert (await submit(http, first, 5)).status_code == 200
            url = server.url.replace("http://", "ws://") + "/graphql"
            async with connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
                await ws.send(json.dumps({"type": "connection_init"}))
                assert json.loads(await ws.recv())["type"] == "connection_ack"
                query = (
                    'subscription { leaderboard(board: "global", period: "all")'
                    " { totalPlayers entries { username score } changes { username newScore } } }"
                )
                await ws.send(
                    json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}})
                )
                now = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert now["type"] == "next"
                assert now["payload"]["data"]["leaderboard"]["entries"] == [
                    {"username": first["username"], "score": 5}
                ]
                second = await new_player(http)
                assert (await submit(http, second, 9)).status_code == 200
                changed = json.loads(await asyncio.wait_for(ws.recv(), 10))
                update = changed["payload"]["data"]["leaderboard"]
                assert update["entries"][0] == {"username": second["username"], "score": 9}
                assert update["changes"] == [{"username": second["username"], "newScore": 9}]
                assert update["totalPlayers"] == 2
                await ws.send(json.dumps({"id": "1", "type": "complete"}))


def test_the_documented_schema_is_the_served_one() -> None:
    """docs/schema.graphql is the schema as the server builds it (regenerate it with
    `python -c 'from scoreboard.api.graphql.schema import build_schema;
    print(build_schema(True).as_str())' > docs/schema.graphql`)."""
    from scoreboard.api.graphql.schema import build_schema

    documented = (Path(__file__).parents[2] / "docs" / "schema.graphql").read_text()
    assert documented == build_schema(True).as_str() + "\n"
