"""Every way a real Redis says 'not now' reaches a client as 503 SERVICE_UNAVAILABLE in
the envelope, with Retry-After, applies nothing, and passes (was: 500 INTERNAL_ERROR)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from scoreboard.core.settings import Settings
from tests.auth_helpers import bearer, error_code, issue_token
from tests.deployment import deployment
from tests.private_redis import PrivateRedis, private_redis


@contextmanager
def _read_only(server: PrivateRedis, tmp_path: Path) -> Iterator[str]:
    """`server` demoted to a replica of a copy of itself, as after a failover."""
    with private_redis(tmp_path / "promoted") as promoted:
        promoted.client().replicaof("127.0.0.1", str(server.port))
        _until(lambda: promoted.client().info("replication")["master_link_status"] == "up")
        promoted.client().replicaof("NO", "ONE")
        server.client().replicaof("127.0.0.1", str(promoted.port))
        _until(lambda: server.client().info("replication")["master_link_status"] == "up")
        try:
            yield "read-only replica"
        finally:
            server.client().replicaof("NO", "ONE")


@contextmanager
def _master_down(server: PrivateRedis, tmp_path: Path) -> Iterator[str]:
    client = server.client()
    client.config_set("replica-serve-stale-data", "no")
    client.replicaof("127.0.0.1", "1")  # nothing listens there
    try:
        yield "lost its primary"
    finally:
        client.replicaof("NO", "ONE")


@contextmanager
def _busy(server: PrivateRedis, tmp_path: Path) -> Iterator[str]:
    server.client().config_set("busy-reply-threshold", "50")
    script = (
        "local t = tonumber(redis.call('TIME')[1]) "
        "while tonumber(redis.call('TIME')[1]) < t + 3 do end return 1"
    )
    worker = threading.Thread(target=lambda: server.client().eval(script, 0))
    worker.start()
    time.sleep(0.2)
    try:
        yield "busy"
    finally:
        worker.join()


@contextmanager
def _paused(server: PrivateRedis, tmp_path: Path) -> Iterator[str]:
    server.client().client_pause(2500, all=True)
    yield "unavailable"
    time.sleep(2.6)


def _until(condition: object, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline
        time.sleep(0.05)


FAULTS = {"READONLY": _read_only, "MASTERDOWN": _master_down, "BUSY": _busy, "paused": _paused}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_each_redis_refusal_is_a_503_that_applies_nothing(
    settings: Settings, own_database: str, tmp_path: Path, fault: str
) -> None:
    settings = dataclasses.replace(settings, database_url=own_database)
    with (
        private_redis(tmp_path / "redis") as server,
        deployment(settings, server, tmp_path) as live,
    ):
        async with httpx.AsyncClient(base_url=live.servers[0].url, timeout=10) as http:
            await live.join(http, 1)
            await live.play(http, 1)
            await live.wait_consistent()
            player = live.players[0]
            token = await issue_token(http, player["access_token"])
            headers = {**bearer(player["access_token"]), "X-Action-Token": token}
            events = server.client().xlen(live.settings_keys().events())
            with FAULTS[fault](server, tmp_path) as said:
                started = time.monotonic()
                answer = await http.post(
                    "/v1/scores/update", json={"score_increase": 3}, headers=headers
                )
                elapsed = time.monotonic() - started
                assert answer.status_code == 503, answer.text
                assert error_code(answer) == "SERVICE_UNAVAILABLE"
                assert said in answer.json()["error"]["message"]
                assert int(answer.headers["Retry-After"]) >= 1
                assert elapsed < 1.0, elapsed
                login = await http.post(
                    "/v1/auth/login",
                    json={"username": player["username"], "password": "correct horse battery"},
                )
                assert login.status_code in (200, 503), login.text  # never a 500
            await asyncio.sleep(0.2)
            assert server.client().xlen(live.settings_keys().events()) == events
            again = await http.post(
                "/v1/scores/update", json={"score_increase": 3}, headers=headers
            )
            assert again.status_code == 200, again.text
            live.ledger.accepted[player["user_id"]] += 3
            await live.wait_consistent()


async def test_a_stalled_redis_never_says_not_applied_of_an_applied_update(
    settings: Settings, own_database: str, tmp_path: Path
) -> None:
    """Was: ten players played while Redis stalled (SIGSTOP) for 3 s; updates answered
    503 ('nothing was applied') were on the board and in PostgreSQL, 28 points per
    player above what they were told. Now a 503 says `outcome`: 'unknown' where the
    command may have reached Redis, and the same request sent again gets the true
    answer; the board ends at exactly what the players were told."""
    settings = dataclasses.replace(settings, database_url=own_database)
    with (
        private_redis(tmp_path / "redis") as server,
        deployment(settings, server, tmp_path) as live,
    ):
        async with httpx.AsyncClient(base_url=live.servers[0].url, timeout=10) as http:
            await live.join(http, 10)

            async def keep_playing(index: int, until: float) -> None:
                player = live.players[index]
                while time.monotonic() < until:
                    await live.play_once(http, player, 7)

            until = time.monotonic() + 6.0
            playing = [asyncio.create_task(keep_playing(i, until)) for i in range(10)]
            await asyncio.sleep(1.0)
            server.pause()
            await asyncio.sleep(3.0)
            server.resume()
            await asyncio.gather(*playing)
            assert live.ledger.outcomes["unknown"] > 0, live.ledger
            assert set(live.ledger.outcomes) <= {"unknown", "not_applied"}, live.ledger
            await live.wait_consistent(within=30)
