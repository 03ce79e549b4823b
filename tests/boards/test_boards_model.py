"""A Hypothesis state machine across several boards and their periods against a plain
model: random plays on random boards, season resets and syncs. Every ranking of every
board (all-time and each current period) always equals the model, ties to the
earlier achiever; after a sync PostgreSQL holds the same totals, ended seasons
archived, and the global board's figures stay in users.current_score."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from scoreboard.api.app import create_app
from scoreboard.api.services import Services
from scoreboard.core.periods import period_at
from scoreboard.core.settings import RateRule, Settings
from scoreboard.sync import SyncFleet
from tests.auth_helpers import PASSWORD, bearer, login, new_player, new_username

PLAYERS = 3
BOARDS = {"global": (), "arena": ("daily", "weekly"), "duel": ("monthly",)}


@dataclasses.dataclass
class Ranking:
    """Per player: (score, order of the update that last moved it)."""

    scores: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)

    def add(self, player: int, increase: int, order: int) -> None:
        score = self.scores.get(player, (0, 0))[0]
        self.scores[player] = (score + increase, order)

    def listing(self) -> list[tuple[int, int]]:
        ranked = sorted(self.scores.items(), key=lambda item: (-item[1][0], item[1][1]))
        return [(player, score) for player, (score, _) in ranked if score > 0]


class BoardsMachine(RuleBasedStateMachine):
    base_settings: Settings

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        generous = RateRule(1_000_000, 60)
        config = dataclasses.replace(
            self.base_settings,
            redis_prefix=f"sbt{uuid.uuid4().hex[:10]}",
            rate_limit_score_update=generous,
            rate_limit_action_token=generous,
            rate_limit_leaderboard=generous,
            anticheat_mode="off",
        )
        self.services = self.run(Services.open(config))
        app = create_app(config)
        app.state.services = self.services
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        suffix = uuid.uuid4().hex[:6]
        self.names = {kind: kind if kind == "global" else f"{kind}-{suffix}" for kind in BOARDS}
        self.admin = self.run(self._admin())
        for board, periods in BOARDS.items():
            if board == "global":
                continue
            created = self.run(
                self.http.post(
                    "/admin/boards",
                    json={
                        "name": self.names[board],
                        "action_types": {"game_completion": 1000},
                        "periods": list(periods),
                    },
                    headers=bearer(self.admin["access_token"]),
                )
            )
            assert created.status_code == 201, created.text
        self.players = [self.run(new_player(self.http)) for _ in range(PLAYERS)]
        self.all_time = {board: Ranking() for board in BOARDS}
        self.periods: dict[tuple[str, str], Ranking] = {}  # (board, period id)
        self.archived: dict[tuple[str, int], Ranking] = {}  # (board, season)
        self.season = dict.fromkeys(BOARDS, 1)
        self.order = 0

    async def _admin(self) -> dict[str, Any]:
        name = new_username()
        await self.services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
        return await login(self.http, name)

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        async def close() -> None:
            keys = [
                k async for k in self.services.redis.scan_iter(match=self.services.keys.pattern())
            ]
            if keys:
                await self.services.redis.delete(*keys)
            # the next example starts from an empty database (this test's own)
            await self.services.pool.execute("TRUNCATE users CASCADE")
            await self.services.pool.execute(
                "DELETE FROM boards WHERE name <> 'global'; UPDATE boards SET season = 1"
            )
            await self.http.aclose()
            await self.services.close()

        self.run(close())
        self.loop.close()

    @rule(
        player=st.integers(0, PLAYERS - 1),
        board=st.sampled_from(sorted(BOARDS)),
        increase=st.integers(1, 50),
    )
    def play(self, player: int, board: str, increase: int) -> None:
        access = self.players[player]["access_token"]
        body: dict[str, Any] = {"action_type": "game_completion", "session_id": "s"}
        if board != "global":
            body["board"] = self.names[board]
        issued = self.run(self.http.post("/auth/action-token", json=body, headers=bearer(access)))
        assert issued.status_code == 200, issued.text
        before = int(time.time() * 1000)
        answer = self.run(
            self.http.post(
                "/scores/update",
                json={"score_increase": increase},
                headers={**bearer(access), "X-Action-Token": issued.json()["data"]["action_token"]},
            )
        )
        after = int(time.time() * 1000)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        self.order += 1
        self.all_time[board].add(player, increase, self.order)
        assert data["board"] == self.names[board]
        assert data["new_score"] == self.all_time[board].scores[player][0]
        assert set(data["periods"]) == set(BOARDS[board])
        for kind, standing in data["periods"].items():
            assert standing["id"] in {period_at(kind, before).id, period_at(kind, after).id}
            ranking = self.periods.setdefault((board, standing["id"]), Ranking())
            ranking.add(player, increase, self.order)
            assert standing["score"] == ranking.scores[player][0]

    @rule(board=st.sampled_from(sorted(BOARDS)))
    def reset(self, board: str) -> None:
        answer = self.run(
            self.http.post(
                f"/admin/boards/{self.names[board]}/reset",
                json={"reason": "model"},
                headers=bearer(self.admin["access_token"]),
            )
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["ended_season"] == self.season[board]
        self.archived[(board, self.season[board])] = self.all_time[board]
        self.all_time[board] = Ranking()
        self.season[board] += 1

    def _listing(self, path: str) -> list[tuple[int, int]]:
        response = self.run(self.http.get(path))
        assert response.status_code == 200, response.text
        ids = {p["user_id"]: i for i, p in enumerate(self.players)}
        return [(ids[e["user_id"]], e["score"]) for e in response.json()["data"]["leaderboard"]]

    @invariant()
    def every_ranking_matches_the_model(self) -> None:
        now = int(time.time() * 1000)
        for board, periods in BOARDS.items():
            name = self.names[board]
            assert self._listing(f"/boards/{name}/top10") == self.all_time[board].listing()
            for kind in periods:
                period_id = period_at(kind, now).id
                expected = self.periods.get((board, period_id), Ranking()).listing()
                assert self._listing(f"/boards/{name}/top10?period={kind}") == expected
        assert self._listing("/leaderboard/top10") == self.all_time["global"].listing()

    @rule()
    def sync_and_compare_postgresql(self) -> None:
        services = self.services
        self.run(SyncFleet(services.settings, services.redis, services.pool).run(burst=True))
        for (board, season), ranking in self.archived.items():
            path = f"/boards/{self.names[board]}/history/season:{season}?limit=100"
            assert self._listing(path) == ranking.listing()
        for (board, period_id), ranking in self.periods.items():
            path = f"/boards/{self.names[board]}/history/{period_id}?limit=100"
            assert self._listing(path) == ranking.listing()
        for player, info in enumerate(self.players):
            current = self.run(
                services.pool.fetchval(
                    "SELECT current_score FROM users WHERE id = $1::uuid", info["user_id"]
                )
            )
            assert current == self.all_time["global"].scores.get(player, (0, 0))[0]


def test_boards_match_the_model(settings: Settings, own_database: str) -> None:
    BoardsMachine.base_settings = dataclasses.replace(settings, database_url=own_database)
    case = BoardsMachine.TestCase
    case.settings = hypothesis_settings(
        max_examples=15,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    case().runTest()
