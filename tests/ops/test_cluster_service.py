"""The service on a Redis Cluster (`SCOREBOARD_REDIS_CLUSTER=true`): accounts, tokens,
updates on several boards held by different masters, reads, the live feed, the
syncer, and a rebuild of a lost board."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from scoreboard.api.services import Services
from scoreboard.core.settings import RateRule, Settings
from scoreboard.sync import SyncFleet
from tests.auth_helpers import PASSWORD, bearer, login, new_player, new_username
from tests.conftest import asgi_client

GENEROUS = RateRule(100_000, 60)


@pytest.fixture
def cluster_settings(settings: Settings, cluster_url: str, own_database: str) -> Settings:
    return dataclasses.replace(
        settings,
        redis_url=cluster_url,
        redis_cluster=True,
        redis_prefix=f"sbt{uuid.uuid4().hex[:10]}",
        database_url=own_database,
        rate_limit_score_update=GENEROUS,
        rate_limit_action_token=GENEROUS,
        rate_limit_leaderboard=GENEROUS,
        anticheat_mode="off",
    )


@pytest_asyncio.fixture
async def on_cluster(
    cluster_settings: Settings,
) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    services = await Services.open(cluster_settings)
    async with asgi_client(services) as http:
        yield services, http
    await services.close()
    await _clean(cluster_settings)


async def _clean(settings: Settings) -> None:
    """Every key of the test's prefix, on every master."""
    from scoreboard.storage.keys import Keys
    from scoreboard.storage.redis_client import connect_for

    client = connect_for(settings)
    try:
        async for key in client.scan_iter(match=Keys(settings.redis_prefix).pattern()):
            await client.delete(key)
    finally:
        await client.aclose()


async def _play(
    http: httpx.AsyncClient, player: dict[str, Any], board: str, score: int
) -> httpx.Response:
    body: dict[str, Any] = {"action_type": "game_completion", "session_id": "s1"}
    if board != "global":
        body["board"] = board
    issued = await http.post(
        "/v1/auth/action-token", json=body, headers=bearer(player["access_token"])
    )
    assert issued.status_code == 200, issued.text
    return await http.post(
        "/v1/scores/update",
        json={"score_increase": score},
        headers={
            **bearer(player["access_token"]),
            "X-Action-Token": issued.json()["data"]["action_token"],
        },
    )


async def test_the_whole_flow_on_a_cluster(on_cluster: tuple[Services, httpx.AsyncClient]) -> None:
    services, http = on_cluster
    name = new_username()
    await services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
    admin = await login(http, name)
    boards = ["global"]
    masters = {services.redis.get_node_from_key(services.keys.board("global").leaderboard).name}  # type: ignore[attr-defined]
    for i in range(12):  # boards until every master holds one
        board = f"arena-{i}"
        created = await http.post(
            "/v1/admin/boards",
            json={"name": board, "action_types": {"game_completion": 500}, "periods": ["daily"]},
            headers=bearer(admin["access_token"]),
        )
        assert created.status_code == 201, created.text
        boards.append(board)
        masters.add(services.redis.get_node_from_key(services.keys.board(board).leaderboard).name)  # type: ignore[attr-defined]
        if len(masters) == 3 and len(boards) >= 3:
            break
    assert len(masters) == 3
    players = [await new_player(http) for _ in range(3)]
    told: dict[tuple[str, str], int] = {}
    for round_ in range(3):
        for b, board in enumerate(boards):
            for p, player in enumerate(players):
                increase = 10 + round_ + b + p
                answer = await _play(http, player, board, increase)
                assert answer.status_code == 200, answer.text
                key = (board, player["user_id"])
                told[key] = told.get(key, 0) + increase
                assert answer.json()["data"]["new_score"] == told[key]
    for board in boards:
        top = (await http.get(f"/v1/boards/{board}/top10")).json()["data"]["leaderboard"]
        assert {e["user_id"]: e["score"] for e in top} == {
            user: score for (b, user), score in told.items() if b == board
        }
    # the live feed of this process follows the global board on the cluster
    subscriber, _ = await services.live.subscribe("global", "all")
    try:
        await _play(http, players[0], "global", 99)
        message = await subscriber.next(3.0)
        assert (
            message is not None
            and json.loads(message.sse_data)["updated_user"]["new_score"]
            == told[("global", players[0]["user_id"])] + 99
        )
    finally:
        services.live.unsubscribe(subscriber)
    told[("global", players[0]["user_id"])] += 99
    # the syncer, one consumer per board, persists everything
    await SyncFleet(services.settings, services.redis, services.pool).run(burst=True)
    rows = await services.pool.fetch("SELECT board, user_id::text, score FROM board_scores")
    persisted = {(r["board"], r["user_id"]): r["score"] for r in rows}
    users = await services.pool.fetch("SELECT id::text, current_score FROM users")
    persisted.update({("global", r["id"]): r["current_score"] for r in users if r["current_score"]})
    assert persisted == told
    # a board lost from its master comes back from PostgreSQL
    lost = services.keys.board(boards[1])
    await services.redis.delete(lost.state, lost.leaderboard, lost.players)
    _, runtime = await services.boards.board(boards[1])
    assert await runtime.guard.check() == "rebuilt"
    top = (await http.get(f"/v1/boards/{boards[1]}/top10")).json()["data"]["leaderboard"]
    assert {e["user_id"]: e["score"] for e in top} == {
        user: score for (b, user), score in told.items() if b == boards[1]
    }
    await asyncio.sleep(0)


async def test_a_period_ranking_moves_on_its_event_on_a_cluster(
    cluster_settings: Settings,
) -> None:
    """The board's channel is followed on its slot's node: the change arrives well before
    a broadcast interval (4 s here) would have let a poller see it."""
    slow = dataclasses.replace(cluster_settings, broadcast_interval_ms=4000)
    services = await Services.open(slow)
    try:
        async with asgi_client(services) as http:
            name = new_username()
            await services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
            admin = await login(http, name)
            created = await http.post(
                "/v1/admin/boards",
                json={
                    "name": "relay",
                    "action_types": {"game_completion": 500},
                    "periods": ["daily"],
                },
                headers=bearer(admin["access_token"]),
            )
            assert created.status_code == 201, created.text
            await services.boards.ready("relay")  # built in Redis (its guard's first look)
            subscriber, _ = await services.live.subscribe("relay", "daily")
            await asyncio.sleep(4.5)  # past the first interval: a poller would now wait
            runner = await new_player(http)
            started = asyncio.get_running_loop().time()
            assert (await _play(http, runner, "relay", 21)).status_code == 200
            message = await subscriber.next(6.0)
            while message is not None and not json.loads(message.sse_data)["leaderboard"]:
                message = await subscriber.next(6.0)
            took = asyncio.get_running_loop().time() - started
            assert (
                message is not None
                and json.loads(message.sse_data)["leaderboard"][0]["score"] == 21
            )
            assert took < 2.0, f"the change took {took:.1f}s"
            services.live.unsubscribe(subscriber)
    finally:
        await services.close()
        await _clean(cluster_settings)


async def test_health_and_metrics_list_every_node_of_the_cluster(
    on_cluster: tuple[Services, httpx.AsyncClient],
) -> None:
    """Was: /health/detailed and /metrics described only the node REDIS_URL names."""
    _, http = on_cluster
    detailed = (await http.get("/health/detailed")).json()["data"]
    nodes = detailed["components"]["redis"]["nodes"]
    primaries = [node for node in nodes if node["role"] == "primary"]
    replicas = [node for node in nodes if node["role"] == "replica"]
    assert len(primaries) == len(replicas) == 3, nodes
    assert all(node["up"] for node in nodes)
    assert {replica["primary"] for replica in replicas} == {p["address"] for p in primaries}
    assert all(r["link"] == "up" and r["lag_bytes"] >= 0 for r in replicas), replicas
    assert [p["boards"] for p in primaries].count(["global"]) == 1
    assert not [problem for problem in detailed["problems"] if "redis" in problem]

    text = (await http.get("/metrics")).text
    up = [line for line in text.splitlines() if line.startswith("scoreboard_redis_node_up{")]
    assert len(up) == 6 and all(line.endswith(" 1.0") for line in up), up
    assert text.count("scoreboard_redis_replica_lag_bytes{") == 3
    assert text.count("scoreboard_redis_replica_link_up{") == 3
