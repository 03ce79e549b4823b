"""`scoreboard …` as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx

from scoreboard.migrations import available
from scoreboard.settings import Settings
from tests.auth_helpers import error_code, login, new_username
from tests.conftest import server_env, serving


def _run(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoreboard", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bad_setting_stops_with_one_line(settings: Settings, tmp_path: Path) -> None:
    env = server_env(settings, SCOREBOARD_BCRYPT_ROUNDS="lots")
    result = _run(["serve"], env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "scoreboard: configuration error: SCOREBOARD_BCRYPT_ROUNDS: expected a whole number"
        " from 4 to 31 (got 'lots')"
    ]


def test_a_short_secret_is_refused(settings: Settings, tmp_path: Path) -> None:
    result = _run(["serve"], server_env(settings, JWT_SECRET="short"), tmp_path)
    assert result.returncode == 2
    assert "JWT_SECRET: must be at least 32 bytes" in result.stderr


def test_sync_and_rebuild_need_real_services(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SCOREBOARD_DATA_DIR": str(tmp_path / "data")}
    for command in ("sync", "rebuild"):
        result = _run([command], env, tmp_path)
        assert result.returncode == 2
        assert "embedded mode" in result.stderr


def test_embedded_mode_refuses_several_workers(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SCOREBOARD_DATA_DIR": str(tmp_path / "data")}
    result = _run(["serve", "--workers", "2"], env, tmp_path)
    assert result.returncode == 2
    assert "--workers: embedded mode runs in one process" in result.stderr


async def test_migrate_is_idempotent(settings: Settings, tmp_path: Path) -> None:
    for _ in range(2):
        result = _run(["migrate"], server_env(settings), tmp_path)
        assert result.returncode == 0, result.stderr
        assert "schema at version" in result.stdout
    assert settings.database_url
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(available())
    finally:
        await conn.close()


async def test_users_create_reads_the_password_from_stdin(
    settings: Settings, tmp_path: Path
) -> None:
    name = new_username()
    env = server_env(settings)
    result = _run(
        ["users", "create", name, "--email", f"{name}@example.com", "--admin"],
        env,
        tmp_path,
        stdin="admin password 1\n",
    )
    assert result.returncode == 0, result.stderr
    assert f"created admin {name}" in result.stdout
    duplicate = _run(
        ["users", "create", name, "--email", f"x{name}@example.com"],
        env,
        tmp_path,
        stdin="admin password 1\n",
    )
    assert duplicate.returncode == 1
    assert "username is already taken" in duplicate.stderr

    with serving(env, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            tokens = await login(http, name, "admin password 1")
            assert tokens["user_id"]
            wrong = await http.post("/auth/login", json={"username": name, "password": "nope"})
            assert error_code(wrong) == "INVALID_CREDENTIALS"
