"""A deployment of real processes on a private Redis, for failure tests: server
processes, a syncer process, a database of its own, and a ledger of what players were
told, to check against what the board and PostgreSQL hold."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from scoreboard.core.settings import Settings
from tests.auth_helpers import bearer, new_player
from tests.conftest import RunningServer, server_env, terminate
from tests.private_redis import PrivateRedis

FAST_SYNC = {
    "SCOREBOARD_SYNC_BLOCK_MS": "200",
    "SCOREBOARD_SYNC_INTERVAL_MS": "50",
    "SCOREBOARD_RATE_LIMIT_SCORE_UPDATE": "100000/minute",
    "SCOREBOARD_RATE_LIMIT_ACTION_TOKEN": "100000/minute",
    "SCOREBOARD_RATE_LIMIT_LEADERBOARD": "100000/minute",
    "SCOREBOARD_ANTICHEAT_MODE": "off",
}


class SyncerProcess:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.log_path = cwd / f"sync-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scoreboard", "sync"],
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        terminate(self.process)
        self._log.close()


@dataclass
class Ledger:
    """What players were told: accepted increases per player, refusals by status."""

    accepted: Counter[str] = field(default_factory=Counter)
    refused: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)  # of updates answered 503


@dataclass
class Deployment:
    settings: Settings
    redis: PrivateRedis
    servers: list[RunningServer]
    syncer: SyncerProcess
    env: dict[str, str]
    ledger: Ledger = field(default_factory=Ledger)
    players: list[dict[str, Any]] = field(default_factory=list)

    async def join(self, http: httpx.AsyncClient, count: int) -> None:
        self.players += [await new_player(http) for _ in range(count)]

    async def play_once(
        self, http: httpx.AsyncClient, player: dict[str, Any], increase: int
    ) -> httpx.Response:
        """One action: a token, then the update, as the README tells a client to play:
        a lost answer, or a 503 whose outcome is not known to be 'not_applied', is
        retried with the same token and body until an answer says what happened (the
        first answer again, if it was applied)."""
        issued = await http.post(
            "/v1/auth/action-token",
            json={"action_type": "game_completion", "session_id": "s"},
            headers=bearer(player["access_token"]),
        )
        if issued.status_code != 200:
            self.ledger.refused[issued.status_code] += 1
            return issued
        headers = {
            **bearer(player["access_token"]),
            "X-Action-Token": issued.json()["data"]["action_token"],
        }
        for _ in range(100):
            try:
                answer = await http.post(
                    "/v1/scores/update", json={"score_increase": increase}, headers=headers
                )
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            if answer.status_code == 503:
                outcome = answer.json()["error"]["details"].get("outcome", "missing")
                self.ledger.outcomes[outcome] += 1
                if outcome != "not_applied":
                    await asyncio.sleep(0.2)
                    continue
            if answer.status_code == 200:
                self.ledger.accepted[player["user_id"]] += increase
            else:
                self.ledger.refused[answer.status_code] += 1
            return answer
        raise AssertionError("no answer that says what happened after 100 tries")

    async def play(self, http: httpx.AsyncClient, rounds: int) -> None:
        for round_ in range(rounds):
            for index, player in enumerate(self.players):
                await self.play_once(http, player, 1 + (round_ * 7 + index * 3) % 40)

    async def play_until_accepted(self, http: httpx.AsyncClient, within: float) -> float:
        """Seconds until an update is accepted again."""
        started = time.monotonic()
        while time.monotonic() - started < within:
            answer = await self.play_once(http, self.players[0], 1)
            if answer.status_code == 200:
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        raise AssertionError(f"no update accepted within {within}s")

    async def persisted(self) -> dict[str, tuple[int, int]]:
        """Per player: (users.current_score, the sum of its score rows)."""
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            rows = await conn.fetch(
                "SELECT u.id::text AS id, u.current_score,"
                " (SELECT coalesce(sum(score_change), 0) FROM scores s"
                "  WHERE s.user_id = u.id) AS summed FROM users u"
            )
            duplicates = await conn.fetchval(
                "SELECT count(*) FROM (SELECT event_id FROM scores GROUP BY event_id"
                " HAVING count(*) > 1) d"
            )
        finally:
            await conn.close()
        assert duplicates == 0
        return {row["id"]: (row["current_score"], row["summed"]) for row in rows}

    def run_cli(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """`scoreboard <args>` as the syncer's user, as an operator would run it."""
        return subprocess.run(
            [sys.executable, "-m", "scoreboard", *args],
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def board(self) -> dict[str, int]:
        client = self.redis.client()
        try:
            members = client.zrange(self.settings_keys().leaderboard(), 0, -1, withscores=True)
        finally:
            client.close()
        return {member.decode().partition(":")[2]: int(score) for member, score in members}

    def settings_keys(self) -> Any:
        from scoreboard.storage.keys import Keys

        return Keys(self.settings.redis_prefix)

    async def wait_consistent(self, within: float = 20.0) -> None:
        """Until the board and PostgreSQL both hold exactly what players were told."""
        deadline = time.monotonic() + within
        told = {user: points for user, points in self.ledger.accepted.items() if points}
        while True:
            board = self.board()
            persisted = await self.persisted()
            pg = {user: current for user, (current, _) in persisted.items() if current}
            summed = {user: total for user, (_, total) in persisted.items() if total}
            if board == pg == summed == told:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not consistent after {within}s:\ntold {told}\nboard {board}\n"
                    f"pg {pg}\nsummed {summed}"
                )
            await asyncio.sleep(0.25)


@contextmanager
def deployment(
    settings: Settings,
    redis: PrivateRedis,
    cwd: Path,
    servers: int = 1,
    redis_url: str | None = None,
    sync_redis_url: str | None = None,
    **env: str,
) -> Iterator[Deployment]:
    """`redis_url` and `sync_redis_url`: how the servers and the syncer log in (by
    default, as whoever `redis.url` lets in)."""
    import dataclasses

    settings = dataclasses.replace(settings, redis_url=redis_url or redis.url)
    full_env = server_env(settings, **{**FAST_SYNC, **env})
    sync_env = {**full_env, "REDIS_URL": sync_redis_url or full_env["REDIS_URL"]}
    running: list[RunningServer] = []
    syncer = None
    try:
        running = [RunningServer(full_env, cwd) for _ in range(servers)]
        for server in running:
            server.wait_ready()
        syncer = SyncerProcess(sync_env, cwd)
        yield Deployment(settings, redis, running, syncer, sync_env)
    finally:
        if syncer is not None:
            syncer.stop()
        for server in running:
            server.stop()
