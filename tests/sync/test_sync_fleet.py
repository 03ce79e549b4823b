"""One syncer process and many boards: bounded Redis connections and memory, and an
update on an idle board persisted within a second while other boards are busy (was:
at about 128 boards persistence stopped, 64 connections sat blocked in XREADGROUP and
"Redis is unavailable" was logged 25,857 times in 90 s while Redis served everyone)."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from scoreboard.api.services import Services
from scoreboard.core.settings import RateRule, Settings
from scoreboard.storage.keys import Keys
from tests.auth_helpers import bearer, new_player
from tests.conftest import add_empty_boards, asgi_client, server_env, unthrottled
from tests.deployment import FAST_SYNC, SyncerProcess
from tests.private_redis import PrivateRedis, private_redis

BOARDS = 10_000
BUSY = ("busy-0", "busy-1", "busy-2")
GENEROUS = RateRule(1_000_000, 60)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def redis_target(own_redis: PrivateRedis) -> tuple[str, bool]:
    return own_redis.url, False


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return unthrottled(settings, own_database, anticheat_mode="off", max_boards=BOARDS + 10)


@pytest_asyncio.fixture
async def many_boards(services: Services) -> AsyncIterator[Services]:
    await add_empty_boards(services, BOARDS - len(BUSY), *BUSY)
    yield services


def _clients(server: PrivateRedis) -> int:
    with server.client() as probe:
        return len(probe.client_list())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _play(http: httpx.AsyncClient, player: dict[str, Any], board: str) -> str:
    """One accepted update on `board`; its stream id."""
    issued = await http.post(
        "/v1/auth/action-token",
        json={"action_type": "run", "session_id": "s", "board": board},
        headers=bearer(player["access_token"]),
    )
    assert issued.status_code == 200, issued.text
    answer = await http.post(
        "/v1/scores/update",
        json={"score_increase": 3},
        headers={
            **bearer(player["access_token"]),
            "X-Action-Token": issued.json()["data"]["action_token"],
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["new_score"])


async def _persisted_within(services: Services, board: str, user_id: str, score: int) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 30:
        found = await services.pool.fetchval(
            "SELECT score FROM board_scores WHERE board = $1 AND user_id = $2::uuid",
            board,
            user_id,
        )
        if found == score:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"board {board} never reached PostgreSQL")


async def test_one_syncer_persists_ten_thousand_boards_with_bounded_resources(
    many_boards: Services, own_redis: PrivateRedis, tmp_path: Path
) -> None:
    services = many_boards
    before = _clients(own_redis)
    env = {**server_env(services.settings, **FAST_SYNC), "SCOREBOARD_SYNC_INTERVAL_MS": "100"}
    syncer = SyncerProcess(env, tmp_path)
    keys = Keys.for_settings(services.settings)
    try:
        deadline = time.monotonic() + 60
        while True:
            raw = await services.redis.get(keys.sync_fleet())
            if raw and json.loads(raw)["boards"] == BOARDS + 1:  # and global
                break
            assert syncer.alive, syncer.log()
            assert time.monotonic() < deadline, "the syncer never followed every board"
            await asyncio.sleep(0.2)

        idle_cpu = _cpu_seconds(syncer.process.pid)
        await asyncio.sleep(5.0)
        idle_cpu = (_cpu_seconds(syncer.process.pid) - idle_cpu) / 5.0
        async with asgi_client(services) as http:
            players = [await new_player(http) for _ in range(6)]
            stop = asyncio.Event()

            async def keep_busy(board: str, player: dict[str, Any]) -> None:
                while not stop.is_set():
                    await _play(http, player, board)

            busy = [
                asyncio.create_task(keep_busy(board, player))
                for board, player in zip(BUSY, players, strict=False)
            ]
            await asyncio.sleep(1.0)
            delays = []
            for index, player in enumerate(players[3:] * 2):
                board = f"board-{1 + index * 997}"
                score = int(await _play(http, player, board))
                delays.append(await _persisted_within(services, board, player["user_id"], score))
            stop.set()
            await asyncio.gather(*busy)

        connections = _clients(own_redis) - before
        rss = _rss_mb(syncer.process.pid)
        print(
            f"\n{BOARDS} boards: syncer connections {connections}, RSS {rss:.0f} MB,"
            f" idle-board update to PostgreSQL {statistics.median(delays):.2f} s median,"
            f" {max(delays):.2f} s max; syncer CPU while all idle {idle_cpu:.0%} of a core"
        )
        assert connections <= 12, connections
        assert rss < 300, rss
        assert statistics.median(delays) < 1.0 and max(delays) < 2.0, delays
        unavailable = syncer.log().count("Redis is unavailable")
        assert unavailable == 0, syncer.log()[-2000:]
        assert syncer.alive
    finally:
        syncer.stop()
