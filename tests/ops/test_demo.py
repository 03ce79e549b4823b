"""`scoreboard demo` as a user runs it: the live board moves within seconds.

Was: no demo data; trying the live page meant scripting players by hand, and the login
limit per address got in the way."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from scoreboard.core.anticheat import AnticheatPolicy
from scoreboard.core.settings import Settings
from scoreboard.ops.demo import ACTION, BOT_ROUND_SECONDS, MIN_ROUND_SECONDS, Demo, Player
from scoreboard.scoring.updates import fingerprint
from scoreboard.storage.keys import Keys
from scoreboard.storage.scripts import Scripts
from tests.auth_helpers import bearer, create_admin, login
from tests.commands import scoreboard_command
from tests.conftest import free_port, server_env, serving


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    """The demo's scores are persisted (a board rebuilt from this database has them)."""
    return dataclasses.replace(settings, database_url=own_database)


def _demo(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return scoreboard_command(["demo", *args], env, cwd)


async def test_the_demo_makes_a_board_with_periods_move(settings: Settings, tmp_path: Path) -> None:
    # a login limit the demo's players run into, as they would on a real server
    env = server_env(
        settings, SCOREBOARD_RATE_LIMIT_LOGIN="3/second", SCOREBOARD_DATA_DIR=str(tmp_path / "data")
    )
    with serving(env, tmp_path) as (server,):
        first = _demo(
            ["--url", server.url, "--players", "5", "--rate", "3", "--seconds", "8"], env, tmp_path
        )
        assert first.returncode == 0, first.stdout + first.stderr
        lines = first.stdout.splitlines()
        assert lines[0] == f"scoreboard demo: playing on {server.url}"
        assert "  created the board 'demo' with daily, weekly, monthly periods" in lines
        assert f"  live board: {server.url}/?board=demo&period=daily" in lines
        console = f"  console:    {server.url}/console (sign in as demo-admin; its password is in"
        assert any(line.startswith(console) for line in lines), lines
        assert lines[-1].startswith("scoreboard demo: ") and " accepted" in lines[-1]
        assert "refused" not in first.stdout, first.stdout  # plausible rounds pass the judge

        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            top = await http.get("/v1/boards/demo/top10", params={"period": "daily"})
            names = [entry["username"] for entry in top.json()["data"]["leaderboard"]]
            assert len(names) >= 5 and "aimbot-9000" in names, names

            stored = json.loads((tmp_path / "data" / "demo.json").read_text())[server.url]
            assert set(stored) >= {"demo-admin", "NovaFox", "aimbot-9000"}
            again = _demo(["--url", server.url, "--players", "5", "--seconds", "3"], env, tmp_path)
            assert again.returncode == 0, again.stdout + again.stderr
            assert "created the board" not in again.stdout  # the same board
            assert "could not register" not in again.stdout
            assert set(
                json.loads((tmp_path / "data" / "demo.json").read_text())[server.url]
            ) == set(stored)  # the same players

            # the bot played as a cheat: it waits in the admins' flagged queue
            synced = scoreboard_command(["sync", "--burst"], env, tmp_path)
            assert synced.returncode == 0, synced.stderr
            admin = await login(http, create_admin(env, tmp_path))
            flagged = await http.get("/v1/admin/flagged", headers=bearer(admin["access_token"]))
            flagged_names = {item["username"] for item in flagged.json()["data"]["items"]}
            assert "aimbot-9000" in flagged_names


def test_the_demos_admin_enrols_where_admins_need_one_time_passwords(
    settings: Settings, own_database: str, tmp_path: Path
) -> None:
    env = server_env(
        dataclasses.replace(settings, database_url=own_database),
        SCOREBOARD_ADMIN_MFA="required",
        SCOREBOARD_DATA_DIR=str(tmp_path / "data"),
    )
    with serving(env, tmp_path) as (server,):
        args = ["--url", server.url, "--players", "2", "--rate", "2", "--seconds", "2"]
        played = _demo(args, env, tmp_path)
        assert played.returncode == 0, played.stdout + played.stderr
        assert "  created the board 'demo' with daily, weekly, monthly periods" in played.stdout
        stored = json.loads((tmp_path / "data" / "demo.json").read_text())[server.url]
        assert stored["demo-admin"]["otp_secret"]


def test_the_demo_says_when_no_server_answers(settings: Settings, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _demo(["--url", url, "--seconds", "1"], server_env(settings), tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"scoreboard demo: nothing answers at {url}: start the server (make serve) or give --url"
    ]


async def test_the_demos_players_pass_the_judge_for_hours_and_its_bot_does_not(
    lua_backend: aioredis.Redis, settings: Settings, tmp_path: Path
) -> None:
    """Two hours of the demo's rounds, as often as it plays them, through the judge at
    its default thresholds. Was: rounds of up to 3.5 points a second of play, flagged by
    the ten-minute window within ten minutes of play."""
    settings = dataclasses.replace(settings, data_dir=tmp_path)
    async with httpx.AsyncClient() as http:
        demo = Demo(
            http, settings, url="http://demo.invalid", players=4, rate=3, seconds=0,
            admin=None, say=lambda _: None, seed=5,
        )  # fmt: skip
        players = [Player(f"p{i}", "", skill) for i, skill in enumerate((0.3, 0.6, 0.9, 1.0))]
        players.append(Player("bot", "", 1.0, cheat=True))
        scripts, keys = Scripts(lua_backend), Keys(f"demo{uuid.uuid4().hex[:8]}")
        policy = AnticheatPolicy.from_settings(settings)
        verdicts: dict[str, Counter[str]] = {player.name: Counter() for player in players}
        start_us = 1_700_000_000_000_000
        for player in players:
            now = 0.0
            while now < 2 * 3600:
                body = demo._round(player, now)
                player.last_round_at = now
                data = body["action_data"]
                judged = await scripts.judge_submission(
                    keys.board(),
                    policy,
                    user_id=player.name,
                    now_us=start_us + int(now * 1e6),
                    increase=body["score_increase"],
                    action_type=ACTION,
                    claimed_duration_us=int(data["time_taken"] * 1e6),
                    claimed_level=data["level"],
                    fingerprint=fingerprint(body["score_increase"], "s", ACTION, json.dumps(data)),
                    token_wait_us=50_000,
                )
                verdicts[player.name][judged.verdict] += 1
                now += BOT_ROUND_SECONDS if player.cheat else MIN_ROUND_SECONDS
    stale = [key async for key in lua_backend.scan_iter(match=keys.pattern())]
    await lua_backend.delete(*stale)
    bot = verdicts.pop("bot")
    assert all(set(counted) == {"approved"} for counted in verdicts.values()), verdicts
    assert bot["flagged"] >= 1 and bot["approved"] == 0, bot
