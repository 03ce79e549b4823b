"""The shipped redis.conf, as it is but for its placeholder passwords and the port:
nobody gets in without a user, and the service runs on it as its least-privileged
users (the servers as `scoreboard-app`, the syncer and the operator's commands as
`scoreboard-sync`) without one command refused."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from scoreboard.core.settings import Settings
from tests.auth_helpers import bearer, new_player
from tests.conftest import REPO, server_env, serving
from tests.deployment import Deployment, deployment
from tests.private_redis import PrivateRedis, private_redis

PASSWORDS = {
    "change-me-app-password": "app-test-password",
    "change-me-sync-password": "sync-test-password",
    "change-me-healthcheck-password": "health-test-password",
}


@pytest.fixture
def shipped(tmp_path: Path) -> Iterator[PrivateRedis]:
    text = (REPO / "redis.conf").read_text()
    for placeholder, password in PASSWORDS.items():
        assert placeholder in text
        text = text.replace(placeholder, password)
    config = tmp_path / "redis.conf"
    config.write_text(text)
    # An auditor of our own, added on the command line, to read the ACL log.
    audit = ("--user", "auditor", "on", ">audit-password", "+@all", "~*", "&*")
    with private_redis(
        tmp_path / "redis", *audit, config=config, login=("auditor", "audit-password")
    ) as server:
        yield server


@pytest.fixture
def live(
    settings: Settings, own_database: str, shipped: PrivateRedis, tmp_path: Path
) -> Iterator[Deployment]:
    settings = dataclasses.replace(settings, database_url=own_database, redis_prefix="sb")
    with deployment(
        settings,
        shipped,
        tmp_path,
        redis_url=shipped.url_as("scoreboard-app", "app-test-password"),
        sync_redis_url=shipped.url_as("scoreboard-sync", "sync-test-password"),
        SCOREBOARD_RECONCILE_INTERVAL_MS="1000",
    ) as running:
        yield running


def test_nobody_gets_in_without_a_user(shipped: PrivateRedis) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=shipped.port).ping()
    checker = redis.Redis(
        port=shipped.port, username="healthcheck", password="health-test-password"
    )
    assert checker.ping()
    with pytest.raises(redis.exceptions.NoPermissionError):
        checker.get("sb:anything")
    with pytest.raises(redis.exceptions.NoPermissionError):
        redis.Redis(
            port=shipped.port, username="scoreboard-app", password="app-test-password"
        ).flushall()
    info = shipped.client().info()
    assert info["maxmemory_policy"] == "noeviction" and info["aof_enabled"] == 1


async def test_the_service_runs_as_its_users_with_nothing_refused(
    live: Deployment, shipped: PrivateRedis, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=live.servers[0].url, timeout=10) as http:
        await live.join(http, 3)
        await live.play(http, 2)
        await live.wait_consistent()
        async with http.stream("GET", "/sse/leaderboard") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    break
        for path in ("/leaderboard/top10", "/leaderboard?limit=50", "/metrics"):
            assert (await http.get(path)).status_code == 200, path
        assert (await http.get("/health/detailed")).json()["data"]["status"] == "ok"
        player = live.players[0]
        refreshed = await http.post(
            "/v1/auth/refresh", json={"refresh_token": player["refresh_token"]}
        )
        assert refreshed.status_code == 200
        logout = await http.post(
            "/v1/auth/logout", headers=bearer(refreshed.json()["data"]["access_token"])
        )
        assert logout.status_code == 200
        for command in (["rebuild"], ["reconcile"]):
            for _ in range(10):  # the syncer reconciles every second: wait for a turn
                done = await asyncio.to_thread(live.run_cli, tmp_path, *command)
                if "another process is" not in done.stderr:
                    break
                await asyncio.sleep(0.5)
            assert done.returncode == 0, done.stderr
        shipped.client().delete("sb:{global}:lb")  # the app's users heal it themselves
        await live.play(http, 1)
        await asyncio.sleep(1.5)
        await live.play(http, 1)
        await live.wait_consistent()
    refused = shipped.client().acl_log()
    assert refused == [], refused


def test_a_wrong_password_is_one_line(
    settings: Settings, shipped: PrivateRedis, tmp_path: Path
) -> None:
    wrong = dataclasses.replace(settings, redis_url=shipped.url_as("scoreboard-app", "nope"))
    result = subprocess.run(
        [sys.executable, "-m", "scoreboard", "serve", "--workers", "2"],
        env=server_env(wrong),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("scoreboard"))
    assert "refused the login" in line and "scoreboard-app:***@127.0.0.1" in line


async def test_a_command_the_redis_user_may_not_run_is_a_503_naming_the_acl(
    settings: Settings, own_database: str, shipped: PrivateRedis, tmp_path: Path
) -> None:
    """An ACL that lags behind the scripts (a command taken away): every request that
    needs it answers 503 in the envelope, saying so, and the server stays up."""
    admin = shipped.client()
    admin.execute_command("ACL", "SETUSER", "scoreboard-app", "-zrangebyscore")
    env = server_env(
        dataclasses.replace(settings, database_url=own_database, redis_prefix="sb"),
        REDIS_URL=shipped.url_as("scoreboard-app", "app-test-password"),
    )
    with serving(env, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            player = await new_player(http)
            for _ in range(2):
                refused = await http.post(
                    "/v1/auth/action-token",
                    json={"action_type": "game_completion", "session_id": "s"},
                    headers=bearer(player["access_token"]),
                )
                assert refused.status_code == 503, refused.text
                error = refused.json()["error"]
                assert error["code"] == "SERVICE_UNAVAILABLE"
                assert "ACL" in error["details"]["redis"]
            assert (await http.get("/health")).status_code == 200
