"""`scoreboard …` as a user runs it."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pyotp

from scoreboard import __version__
from scoreboard.core.settings import Settings
from scoreboard.storage.migrations import available
from tests.auth_helpers import PASSWORD, bearer, error_code, login, new_player, new_username, submit
from tests.commands import scoreboard_command
from tests.conftest import server_env, serving

_run = scoreboard_command


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


def test_tls_cert_makes_a_certificate_once_without_any_setting(tmp_path: Path) -> None:
    from cryptography import x509

    env = {"PATH": "/usr/bin:/bin", "JWT_SECRET": "short"}  # settings are not read
    made = _run(
        [
            "tls-cert",
            "tls",
            "--name",
            "scores.example.com",
            "--name",
            "10.0.0.5",
            "--name",
            "10.0.0.5",
        ],
        env,
        tmp_path,
    )
    assert made.returncode == 0, made.stderr
    key, certificate = tmp_path / "tls" / "privkey.pem", tmp_path / "tls" / "fullchain.pem"
    assert key.stat().st_mode & 0o077 == 0
    names = (
        x509.load_pem_x509_certificate(certificate.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert [str(n.value) for n in names] == ["scores.example.com", "10.0.0.5"]
    first = certificate.read_bytes()
    kept = _run(["tls-cert", "tls"], env, tmp_path)
    assert kept.returncode == 0 and "kept" in kept.stdout and certificate.read_bytes() == first
    replaced = _run(["tls-cert", "tls", "--replace"], env, tmp_path)
    assert replaced.returncode == 0 and certificate.read_bytes() != first


def test_sync_and_rebuild_need_real_services(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SCOREBOARD_DATA_DIR": str(tmp_path / "data")}
    for command in ("sync", "rebuild"):
        result = _run([command], env, tmp_path)
        assert result.returncode == 2
        assert "embedded mode" in result.stderr
    banned = _run(["users", "ban", "alice", "--reason", "bot"], env, tmp_path)
    assert banned.returncode == 2
    assert banned.stderr.strip().splitlines() == [
        "scoreboard: configuration error: REDIS_URL: in embedded mode the boards live inside"
        " `scoreboard serve`; ban through its API (POST /admin/players/{id}/ban), or set"
        " REDIS_URL and DATABASE_URL"
    ]


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


async def test_operators_promote_demote_reset_passwords_ban_and_unban(
    settings: Settings, own_database: str, tmp_path: Path
) -> None:
    """Was: no way to promote, demote, reset a password or ban from the command line.
    Each goes through the same path as the admin API and is audited with the operator."""
    settings = dataclasses.replace(settings, database_url=own_database)  # it persists scores
    env = server_env(settings)
    with serving(env, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            player = await new_player(http)
            name = player["username"]
            assert (await submit(http, player, 40)).status_code == 200

            promoted = _run(["users", "promote", name], env, tmp_path)
            assert promoted.returncode == 0, promoted.stderr
            assert promoted.stdout.startswith(f"scoreboard: {name} is now an admin\n")
            again = _run(["users", "promote", name], env, tmp_path)
            assert again.stdout == f"scoreboard: {name} is already an admin\n"
            admin = await login(http, name)
            audit = await http.get("/v1/admin/audit", headers=bearer(admin["access_token"]))
            assert audit.status_code == 200

            demoted = _run(["users", "demote", name], env, tmp_path)
            assert demoted.stdout == f"scoreboard: {name} is now a player\n"
            refused = await http.get("/v1/admin/audit", headers=bearer(admin["access_token"]))
            assert error_code(refused) == "INSUFFICIENT_PERMISSIONS"  # at once

            reset = _run(["users", "reset-password", name], env, tmp_path, stdin="new secret 99\n")
            assert reset.returncode == 0, reset.stderr
            assert reset.stdout == f"scoreboard: new password for {name}; 2 sessions ended\n"
            old = await http.post(
                "/v1/auth/action-token",
                json={"action_type": "game_completion", "session_id": "s"},
                headers=bearer(player["access_token"]),
            )
            assert error_code(old) == "INVALID_TOKEN"  # its access token stops at once
            stale = await http.post(
                "/v1/auth/refresh", json={"refresh_token": admin["refresh_token"]}
            )
            assert error_code(stale) == "INVALID_TOKEN"
            wrong = await http.post("/v1/auth/login", json={"username": name, "password": PASSWORD})
            assert error_code(wrong) == "INVALID_CREDENTIALS"
            short = _run(["users", "reset-password", name], env, tmp_path, stdin="short\n")
            assert short.returncode == 1 and "password" in short.stderr
            player = {**player, **await login(http, name, "new secret 99")}

            headers = bearer(player["access_token"])
            secret = (await http.post("/v1/auth/mfa/enroll", headers=headers)).json()["data"]
            code = pyotp.TOTP(secret["secret"]).now()
            on = await http.post("/v1/auth/mfa/confirm", json={"code": code}, headers=headers)
            assert on.status_code == 200, on.text
            needs = await http.post(
                "/v1/auth/login", json={"username": name, "password": "new secret 99"}
            )
            assert error_code(needs) == "MFA_REQUIRED"
            off = _run(["users", "reset-mfa", name], env, tmp_path)
            assert (
                off.stdout == f"scoreboard: one-time passwords of {name} reset: it enrols afresh\n"
            )
            none = _run(["users", "reset-mfa", name], env, tmp_path)
            assert none.stdout == f"scoreboard: one-time passwords of {name} were not on\n"
            player = {**player, **await login(http, name, "new secret 99")}

            blank = _run(["users", "ban", name, "--reason", "   "], env, tmp_path)
            assert blank.returncode == 2 and blank.stderr.startswith(
                "scoreboard: configuration error: --reason:"
            )
            banned = _run(["users", "ban", name, "--reason", "farm account"], env, tmp_path)
            assert banned.returncode == 0, banned.stderr
            assert banned.stdout == f"scoreboard: {name} is banned on every board\n"
            top = (await http.get("/v1/leaderboard/top10")).json()["data"]["leaderboard"]
            assert player["user_id"] not in [entry["user_id"] for entry in top]
            suspended = await http.post(
                "/v1/auth/login", json={"username": name, "password": "new secret 99"}
            )
            assert error_code(suspended) == "INSUFFICIENT_PERMISSIONS"

            unbanned = _run(["users", "unban", name], env, tmp_path)
            assert unbanned.returncode == 0, unbanned.stderr
            standing = (await http.get(f"/v1/scores/user/{player['user_id']}")).json()["data"]
            assert standing["current_score"] == 40 and standing["rank"] is not None

            missing = _run(["users", "promote", "nobody-" + name], env, tmp_path)
            assert missing.returncode == 1
            assert missing.stderr.strip() == f"scoreboard users: no account named nobody-{name}"

    drained = _run(["sync", "--burst"], env, tmp_path)
    assert drained.returncode == 0, drained.stderr
    assert settings.database_url
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            "SELECT event_type, validation_result, user_agent, details FROM audit_log"
            " WHERE user_id = $1::uuid AND (event_type LIKE 'admin_%' OR event_type IN"
            " ('role_changed', 'password_reset')) ORDER BY created_at, id",
            player["user_id"],
        )
    finally:
        await connection.close()
    seen = [(row["event_type"], row["validation_result"]) for row in rows]
    assert seen == [
        ("role_changed", "admin"),
        ("role_changed", "player"),
        ("password_reset", "reset"),
        ("admin_ban", "banned"),
        ("admin_unban", "unbanned"),
    ]
    for row in rows:
        details = json.loads(row["details"])
        assert details["operator"].count("@") == 1, details
        assert row["user_agent"].startswith("scoreboard users "), row["user_agent"]
    assert json.loads(rows[3]["details"])["reason"] == "farm account"
    assert json.loads(rows[3]["details"])["admin_id"] is None
