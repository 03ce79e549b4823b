"""`scoreboard …` as a user runs it."""

from __future__ import annotations

import dataclasses
import os
import pty
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx

from scoreboard import __version__
from scoreboard.core.settings import Settings
from scoreboard.storage.migrations import available
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


def test_version_and_every_commands_help(settings: Settings, tmp_path: Path) -> None:
    env = server_env(settings)
    version = _run(["--version"], env, tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"scoreboard {__version__}"
    for command in (["serve"], ["sync"], ["migrate"], ["rebuild"], ["reconcile"]):
        shown = _run([*command, "--help"], env, tmp_path)
        assert shown.returncode == 0 and "environment: " in shown.stdout, command
    serve = _run(["serve", "--help"], env, tmp_path).stdout
    assert "(default: 127.0.0.1)" in serve and "(default: 8000)" in serve
    assert "SCOREBOARD_BCRYPT_ROUNDS" in _run(["users", "create", "--help"], env, tmp_path).stdout


def test_users_create_asks_for_the_password_on_a_terminal(
    settings: Settings, own_database: str, tmp_path: Path
) -> None:
    """On a terminal: asked twice, never echoed; the account then logs in."""
    name = new_username()
    env = server_env(dataclasses.replace(settings, database_url=own_database))
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the command, with the pty as its controlling terminal
        os.chdir(tmp_path)
        command = [sys.executable, "-m", "scoreboard", "users", "create", name]
        os.execve(sys.executable, [*command, "--email", f"{name}@example.com"], env)
    seen = b""
    for answer in (b"correct horse battery\n", b"correct horse battery\n"):
        while not seen.endswith(b": "):
            seen += os.read(terminal, 1024)
        os.write(terminal, answer)
        seen += b"|"
    while True:
        try:
            chunk = os.read(terminal, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"Password: |" in seen and b"Password again: |" in seen
    assert b"correct horse" not in seen  # not echoed
    assert b"created player " + name.encode() in seen


def test_sync_says_when_it_starts_and_when_it_has_caught_up(
    settings: Settings, tmp_path: Path
) -> None:
    """Was: `scoreboard sync` printed nothing until it stopped."""
    import signal
    import time

    env = server_env(settings, SCOREBOARD_SYNC_CONSUMER=f"cli-{time.monotonic_ns()}")
    process = subprocess.Popen(
        [sys.executable, "-m", "scoreboard", "sync"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        said = _lines_within(process, 2, seconds=30)
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    assert len(said) == 2, said
    started, caught_up = said
    assert started.startswith("scoreboard sync: started as consumer cli-"), started
    assert caught_up.startswith("scoreboard sync: caught up"), caught_up
    assert rest.startswith("scoreboard sync: stopped after")
    assert process.returncode == 0


def _lines_within(process: subprocess.Popen[str], count: int, seconds: float) -> list[str]:
    """Up to `count` lines of the process's output, waiting `seconds` at most."""
    import selectors
    import time

    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while len(lines) < count and time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, deadline - time.monotonic())):
                line = process.stdout.readline()
                if not line:
                    break
                lines.append(line)
    return lines


def test_users_list_and_show_describe_accounts(settings: Settings, tmp_path: Path) -> None:
    """Was: `scoreboard users` could only create; an operator could not see who exists."""
    env = server_env(settings)
    admin, player = new_username(), new_username()
    for name, extra in ((admin, ["--admin"]), (player, [])):
        created = _run(
            ["users", "create", name, "--email", f"{name}@example.com", *extra],
            env,
            tmp_path,
            stdin="a good password 1\n",
        )
        assert created.returncode == 0, created.stderr

    admins = _run(["users", "list", "--admins", "--limit", "5"], env, tmp_path)
    assert admins.returncode == 0, admins.stderr
    header, *rows = admins.stdout.splitlines()
    assert header.split() == ["username", "id", "role", "banned", "created"]
    assert rows[0].split()[0] == admin and rows[0].split()[2] == "admin"  # newest first
    assert all(row.split()[2] == "admin" for row in rows) and len(rows) <= 5

    shown = _run(["users", "show", player], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"username  {player}" in shown.stdout
    assert f"email     {player}@example.com" in shown.stdout
    assert "role      player" in shown.stdout and "banned    no" in shown.stdout
    assert "scores    none" in shown.stdout

    missing = _run(["users", "show", "nobody-" + player], env, tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"scoreboard users: no account named nobody-{player}"
