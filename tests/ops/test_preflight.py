"""A command given a Redis or PostgreSQL it cannot use says so in one line and exits
non-zero, `serve --workers N` included; a Redis without AOF is a warning."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import exceptions as redis_exceptions

from scoreboard.core.settings import Settings
from scoreboard.storage.preflight import StartupError, check_redis, redacted, redis_warnings
from tests.conftest import server_env
from tests.private_redis import PrivateRedis, private_redis
from tests.services_under_test import free_port


@pytest.fixture
def evicting(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path / "redis", "--maxmemory-policy", "allkeys-lru") as server:
        yield server


def _run(settings: Settings, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoreboard", *args],
        env=server_env(settings, **env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error, alone on its line: no traceback (log warnings may come before it)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("scoreboard")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("command", [["serve", "--workers", "2"], ["sync"]])
def test_an_evicting_redis_stops_the_command_with_one_line(
    settings: Settings, evicting: PrivateRedis, tmp_path: Path, command: list[str]
) -> None:
    """Was: serve and sync started without a word against allkeys-lru (data loss)."""
    result = _run(dataclasses.replace(settings, redis_url=evicting.url), tmp_path, *command)
    assert result.returncode == 1
    line = _one_line(result)
    assert "maxmemory-policy allkeys-lru" in line and evicting.url in line


async def test_eviction_can_be_allowed_for_experiments(
    settings: Settings, evicting: PrivateRedis
) -> None:
    allowed = dataclasses.replace(settings, redis_url=evicting.url, allow_eviction=True)
    assert any("allkeys-lru" in warning for warning in await check_redis(allowed))
    with pytest.raises(StartupError):
        await check_redis(dataclasses.replace(allowed, allow_eviction=False))


async def test_a_redis_without_aof_is_a_warning(settings: Settings, tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as plain:
        warnings = await check_redis(dataclasses.replace(settings, redis_url=plain.url))
    assert len(warnings) == 1 and "without AOF" in warnings[0]
    with private_redis(tmp_path / "aof", "--appendonly", "yes") as durable:
        assert await check_redis(dataclasses.replace(settings, redis_url=durable.url)) == []


@pytest.mark.parametrize("store", ["redis", "postgres"])
@pytest.mark.parametrize("command", [["serve", "--workers", "2"], ["sync"], ["migrate"]])
def test_an_unreachable_store_is_one_line_naming_it_without_its_password(
    settings: Settings, tmp_path: Path, store: str, command: list[str]
) -> None:
    """Was: a 50-70 line traceback naming neither host nor port, and `serve --workers 2`
    exited 0."""
    port = free_port()
    if store == "redis":
        broken = dataclasses.replace(settings, redis_url=f"redis://:hunter2@127.0.0.1:{port}/0")
    else:
        broken = dataclasses.replace(
            settings, database_url=f"postgresql://app:hunter2@127.0.0.1:{port}/test"
        )
    if command == ["migrate"] and store == "redis":
        pytest.skip("migrate does not use Redis")
    result = _run(broken, tmp_path, *command)
    assert result.returncode == 1, result.stderr
    line = _one_line(result)
    assert f"127.0.0.1:{port}" in line and "hunter2" not in line and "***" in line


def test_redacted_urls_keep_everything_but_the_password() -> None:
    assert redacted("redis://app:s3cret@host:6380/2") == "redis://app:***@host:6380/2"
    assert redacted("redis://host:6379/0") == "redis://host:6379/0"


def test_an_unknown_variable_is_reported_when_a_command_starts(
    settings: Settings, tmp_path: Path
) -> None:
    result = _run(settings, tmp_path, "migrate", SCOREBOARD_RATELIMIT_LOGIN="5/minute")
    assert result.returncode == 0, result.stderr
    assert "SCOREBOARD_RATELIMIT_LOGIN is not a setting" in result.stderr
    assert "did you mean SCOREBOARD_RATE_LIMIT_LOGIN?" in result.stderr


async def test_a_redis_older_than_the_scripts_need_stops_the_command(settings: Settings) -> None:
    class OldRedis:
        async def info(self) -> dict[str, str]:
            return {"redis_version": "6.2.14", "maxmemory_policy": "noeviction"}

    with pytest.raises(StartupError, match=r"Redis 6\.2\.14 at .* is older than 7\.0"):
        await redis_warnings(OldRedis(), settings)  # type: ignore[arg-type]


async def test_a_redis_that_cannot_be_inspected_is_a_warning(settings: Settings) -> None:
    class NoInfo:
        async def info(self) -> dict[str, str]:
            raise redis_exceptions.ResponseError("unknown command 'info'")

    warnings = await redis_warnings(NoInfo(), settings)  # type: ignore[arg-type]
    assert len(warnings) == 1 and "could not check the configuration" in warnings[0]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("REDIS_URL", "127.0.0.1:6379"), ("DATABASE_URL", "127.0.0.1:5432/scoreboard")],
)
def test_a_store_url_without_its_scheme_is_a_configuration_error(
    settings: Settings, tmp_path: Path, variable: str, value: str
) -> None:
    """Was: REDIS_URL=localhost:6379 ended in redis-py's 37-line ValueError, exit 1."""
    result = _run(settings, tmp_path, "serve", **{variable: value})
    assert result.returncode == 2, result.stderr
    line = _one_line(result)
    assert line.startswith(f"scoreboard: configuration error: {variable}:") and "://" in line


def test_a_password_for_a_redis_without_one_stops_the_command_with_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    """Was: the start-up check passed (redis-py ignores the refusal), then the service's
    own connection was refused: a traceback, "Application startup failed", exit 3."""
    with private_redis(tmp_path / "redis") as server:
        url = f"redis://:hunter2@127.0.0.1:{server.port}/0"
        result = _run(dataclasses.replace(settings, redis_url=url), tmp_path, "serve")
    assert result.returncode == 1, result.stderr
    line = _one_line(result)
    assert "refused the login" in line and "hunter2" not in line and "Application" not in line


def test_a_port_in_use_is_one_line_before_anything_starts(
    settings: Settings, tmp_path: Path
) -> None:
    """Was: the service started in full (the board checked, even rebuilt), then uvicorn
    logged the bind error among seven lines and exited 3."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(settings, tmp_path, "serve", "--port", str(port))
    assert result.returncode == 1, result.stderr
    line = _one_line(result)
    assert f"127.0.0.1:{port}" in line and "in use" in line
    assert "startup" not in result.stderr.lower()
