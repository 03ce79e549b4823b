"""PostgreSQL read replicas (`DATABASE_READ_URL`): history, admin listings and the audit
trail are read from a streaming replica (`pg_basebackup -R`) of a PostgreSQL of this
module's own; a replica that lags or stops is passed over for the primary, with one
warning each way and its state in `/health/detailed` and `/metrics`."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from scoreboard.api.services import Services
from scoreboard.core.settings import Settings, SettingsError
from scoreboard.storage.read_replicas import ReadPools, parse_lsn
from scoreboard.sync import Syncer
from tests.auth_helpers import PASSWORD, bearer, login, new_player, new_username
from tests.conftest import asgi_client, unthrottled
from tests.private_postgres import PrivatePostgres

MAX_LAG = 2.0
LOGGER = "scoreboard.read_replicas"


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PrivatePostgres, PrivatePostgres]]:
    root = tmp_path_factory.mktemp("replicated")
    primary = PrivatePostgres(root / "primary")
    primary.start()
    replica = primary.replica(root / "replica")
    try:
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


@pytest.fixture
def settings(settings: Settings, servers: tuple[PrivatePostgres, PrivatePostgres]) -> Settings:
    primary, replica = servers
    return unthrottled(
        settings,
        primary.dsn,
        database_read_url=(replica.dsn,),
        db_read_max_lag_seconds=MAX_LAG,
    )


@pytest_asyncio.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(services) as http:
        yield http


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.1)


async def _admin_headers(http: httpx.AsyncClient, services: Services) -> dict[str, str]:
    name = new_username()
    await services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
    return bearer((await login(http, name))["access_token"])


async def _logged_out(http: httpx.AsyncClient, services: Services) -> str:
    """A new player who logged out, the record carried into PostgreSQL; their id."""
    player = await new_player(http)
    out = await http.post("/v1/auth/logout", headers=bearer(player["access_token"]))
    assert out.status_code == 200
    await Syncer(services.settings, services.redis, services.pool).run(burst=True)
    return str(player["user_id"])


def _logouts(
    http: httpx.AsyncClient, headers: dict[str, str], user_id: str
) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        response = await http.get(
            f"/v1/admin/audit?event_type=logout&user_id={user_id}", headers=headers
        )
        assert response.status_code == 200, response.text
        return len(response.json()["data"]["items"])

    return count


def _warnings(caplog: pytest.LogCaptureFixture, words: str) -> int:
    return sum(1 for r in caplog.records if r.name == LOGGER and words in r.getMessage())


async def _replica_state(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/health/detailed")
    body = response.json()
    details = body.get("data") or body.get("error", {}).get("details")
    replicas: list[dict[str, Any]] = details["components"]["postgres"]["replicas"]
    return {**replicas[0], "problems": details["problems"], "status": details["status"]}


async def test_reads_come_from_the_replica_and_from_the_primary_while_it_lags(
    client: httpx.AsyncClient,
    services: Services,
    servers: tuple[PrivatePostgres, PrivatePostgres],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    _, replica = servers
    headers = await _admin_headers(client, services)
    first = await _logged_out(client, services)
    await _eventually(lambda: _has(_logouts(client, headers, first)), 10)
    assert (await _replica_state(client))["state"] == "serving"

    standby = await asyncpg.connect(replica.dsn)
    try:
        await standby.execute("SELECT pg_wal_replay_pause()")
        second = await _logged_out(client, services)
        # the replica serves the reads and has not replayed the record yet
        assert await _logouts(client, headers, second)() == 0
        # once it is further behind than the most allowed, the primary serves them
        await _eventually(lambda: _has(_logouts(client, headers, second)), MAX_LAG + 5)
        state = await _replica_state(client)
        assert state["state"] == "lagging"
        assert state["lag_seconds"] > MAX_LAG and state["lag_bytes"] > 0
        assert state["status"] == "degraded"
        assert any("read replica" in problem for problem in state["problems"])
        metrics = (await client.get("/metrics")).text
        assert f'scoreboard_db_replica_serving{{replica="{replica.dsn}"}} 0' in metrics
        assert "scoreboard_db_replica_lag_bytes{" in metrics
        await asyncio.sleep(2.5)  # more checks find it behind: still one warning
        assert _warnings(caplog, "behind") == 1
    finally:
        await standby.execute("SELECT pg_wal_replay_resume()")
        await standby.close()
    await _eventually(lambda: _state_is(client, "serving"), 10)
    assert _warnings(caplog, "serving reads again") == 1
    third = await _logged_out(client, services)
    await _eventually(lambda: _has(_logouts(client, headers, third)), 10)


async def test_a_stopped_replica_is_passed_over_at_once(
    client: httpx.AsyncClient,
    services: Services,
    servers: tuple[PrivatePostgres, PrivatePostgres],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    primary, replica = servers
    player = await new_player(client)
    await services.pool.execute(
        "INSERT INTO period_scores (board, period_id, user_id, score, last_event_seq)"
        " VALUES ('global', 'daily:2026-01-02', $1, 40, 1)",
        player["user_id"],
    )
    history = "/v1/boards/global/history/daily:2026-01-02"

    async def listed() -> bool:
        response = await client.get(history)
        assert response.status_code == 200, response.text
        return [e["user_id"] for e in response.json()["data"]["leaderboard"]] == [player["user_id"]]

    await _eventually(listed, 10)
    replica.stop()
    try:
        # the first read after the stop fails on the replica and is read on the primary
        assert await listed()
        await _eventually(lambda: _state_is(client, "down"), 5)
        assert _warnings(caplog, "not answering") == 1
        assert await listed()
    finally:
        replica.resume()
    await _eventually(lambda: _state_is(client, "serving"), 15)
    # every write went to the primary: nothing was refused as read-only on the way
    assert await services.pool.fetchval("SELECT pg_is_in_recovery()") is False
    assert primary.dsn == services.settings.database_url


async def test_without_read_replicas_every_read_is_the_primarys(
    settings: Settings,
) -> None:
    plain = dataclasses.replace(settings, database_read_url=())
    services = await Services.open(plain)
    try:
        assert services.reads.replicas == []
        async with asgi_client(services) as http:
            response = await http.get("/health/detailed")
            assert "replicas" not in response.json()["data"]["components"]["postgres"]
            assert "scoreboard_db_replica" not in (await http.get("/metrics")).text
    finally:
        await services.close()


def test_several_read_replicas_are_named_in_one_variable() -> None:
    env = {
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DATABASE_URL": "postgresql://p@primary/db",
        "DATABASE_READ_URL": "postgresql://r@one:5432/db, postgres://r@two,three/db",
    }
    assert Settings.from_env(env).database_read_url == (
        "postgresql://r@one:5432/db",
        "postgres://r@two,three/db",
    )
    with pytest.raises(SettingsError, match="DATABASE_READ_URL"):
        Settings.from_env({**env, "DATABASE_READ_URL": "one:5432"})
    with pytest.raises(SettingsError, match="DATABASE_READ_URL: read replicas need"):
        Settings.from_env({"DATABASE_READ_URL": "postgresql://r@one/db"})


def test_a_replicas_lag_is_the_age_of_the_newest_position_it_has_replayed() -> None:
    reads = ReadPools(primary=None, replicas=[], max_lag_seconds=MAX_LAG)  # type: ignore[arg-type]
    reads._positions.extend([(100.0, 10), (101.0, 10), (102.0, 30), (103.0, 50)])
    assert reads._lag_seconds(103.5, 50) == pytest.approx(0.5)  # caught up
    assert reads._lag_seconds(103.5, 40) == pytest.approx(1.5)  # has what 102.0 saw
    assert reads._lag_seconds(103.5, 10) == pytest.approx(2.5)  # an idle spell is no lag
    assert reads._lag_seconds(103.5, 5) == pytest.approx(3.5)  # at least since the oldest
    assert parse_lsn("16/B374D848") == (0x16 << 32) + 0xB374D848


async def _has(count: Callable[[], Awaitable[int]]) -> bool:
    return await count() == 1


async def _state_is(http: httpx.AsyncClient, state: str) -> bool:
    return bool((await _replica_state(http))["state"] == state)
