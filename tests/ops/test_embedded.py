"""The embedded default: nothing configured, one process, accounts kept across restarts."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path

import httpx
import pytest

from tests.auth_helpers import login, new_player, register, submit
from tests.conftest import serving


def _embedded_env(data_dir: Path) -> dict[str, str]:
    removed = {"REDIS_URL", "DATABASE_URL", "JWT_SECRET", "JWT_REFRESH_SECRET"}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in removed and not key.startswith("SCOREBOARD_")
    }
    env.update(SCOREBOARD_DATA_DIR=str(data_dir), SCOREBOARD_BCRYPT_ROUNDS="4")
    return env


async def test_embedded_mode_keeps_accounts_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = _embedded_env(data_dir)
    with serving(env, tmp_path, within=120) as (first,):
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
            user = await register(http)
            detailed = (await http.get("/health/detailed")).json()["data"]
            assert detailed["mode"] == "embedded"
            assert detailed["components"]["redis"]["status"] == "up"
    log = first.log_path.read_text()
    assert "EMBEDDED MODE" in log

    secrets_file = data_dir / "secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    stored = json.loads(secrets_file.read_text())
    assert len(stored["jwt_secret"]) >= 32

    with serving(env, tmp_path, within=120) as (second,):
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as http:
            tokens = await login(http, user["username"])
            assert tokens["user_id"] == user["user_id"]
            refreshed = await http.post(
                "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
            )
            assert refreshed.status_code == 200
    assert json.loads(secrets_file.read_text()) == stored


async def _wait_for_sync(http: httpx.AsyncClient) -> dict[str, object]:
    for _ in range(100):
        sync: dict[str, object] = (await http.get("/health/detailed")).json()["data"]["components"][
            "sync"
        ]
        if sync["status"] == "running" and sync["lag"] == 0 and sync["pending"] == 0:
            return sync
        await asyncio.sleep(0.1)
    raise AssertionError(f"the embedded syncer did not catch up: {sync}")


async def test_embedded_mode_syncs_and_rebuilds_the_board_after_a_restart(
    tmp_path: Path,
) -> None:
    env = _embedded_env(tmp_path / "data")
    with serving(env, tmp_path, within=120) as (first,):
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
            players = [await new_player(http) for _ in range(3)]
            for points, player in zip((30, 50, 30), players, strict=True):
                assert (await submit(http, player, points)).status_code == 200
            before = (await http.get("/leaderboard/top10")).json()["data"]["leaderboard"]
            await _wait_for_sync(http)

    with serving(env, tmp_path, within=120) as (second,):
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as http:
            after = (await http.get("/leaderboard/top10")).json()["data"]["leaderboard"]
    strip = [(e["user_id"], e["rank"], e["score"]) for e in before]
    assert [(e["user_id"], e["rank"], e["score"]) for e in after] == strip
    assert [e["score"] for e in after] == [50, 30, 30]


def test_the_run_says_which_services_it_used() -> None:
    from tests import services_under_test as under_test

    saved = dict(under_test.USED)
    try:
        under_test.USED.clear()
        assert under_test.used_services_line() is None
        under_test.USED.update(Redis="real, redis://x", PostgreSQL="FALLBACK, embedded")
        assert under_test.used_services_line() == (
            "services used: PostgreSQL: FALLBACK, embedded; Redis: real, redis://x"
        )
    finally:
        under_test.USED.clear()
        under_test.USED.update(saved)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_killed_server_leaves_no_embedded_postgresql_for_ever(tmp_path: Path) -> None:
    """Was: after `kill -9` of serve the embedded PostgreSQL kept running, and no later
    run ever stopped it."""
    data_dir = tmp_path / "data"
    env = _embedded_env(data_dir)
    with serving(env, tmp_path, within=120) as (first,):
        first.process.kill()
        first.process.wait()
    postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    assert _alive(postmaster)  # orphaned by the kill
    with serving(env, tmp_path, within=120) as (second,):
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as http:
            assert (await http.get("/health/detailed")).status_code == 200
    for _ in range(100):  # the second server, exiting as the last user, stopped it
        if not _alive(postmaster):
            break
        await asyncio.sleep(0.1)
    assert not _alive(postmaster)


def test_embedded_mode_without_its_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An image built for real services has neither in-process store: embedded mode
    then fails in one line naming the extra, not with an ImportError."""
    from scoreboard.core.errors import EmbeddedExtraMissing
    from scoreboard.storage import redis_client as redis_store

    monkeypatch.setitem(sys.modules, "fakeredis", None)
    with pytest.raises(EmbeddedExtraMissing) as missing:
        redis_store.connect_in_process()
    assert "scoreboard[embedded]" in missing.value.message


async def test_a_second_embedded_server_on_one_data_folder_refuses_in_one_line(
    tmp_path: Path,
) -> None:
    """Was: it started, with a Redis of its own, and showed a different board for up to
    a minute."""
    import subprocess

    data_dir = tmp_path / "data"
    env = _embedded_env(data_dir)
    with serving(env, tmp_path, within=120) as (first,):
        second = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "scoreboard", "serve", "--port", "0"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
            assert (await http.get("/health")).status_code == 200  # the first one serves on
    assert second.returncode == 1, second.stderr
    lines = [line for line in second.stderr.splitlines() if line.startswith("scoreboard")]
    assert "Traceback" not in second.stderr
    assert len(lines) == 1 and str(data_dir) in lines[0] and "already" in lines[0], lines
