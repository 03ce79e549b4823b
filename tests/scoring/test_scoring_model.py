"""A Hypothesis state machine: random issue / submit / replay / misuse / expire sequences
against a plain Python model. The board always equals the sum of accepted increases,
the owner's identical retry of a spent token gets the first answer again (any other
use of it is refused), and every read route agrees on ranks."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
)

from scoreboard.api.app import create_app
from scoreboard.api.services import Services
from scoreboard.core.settings import PACE_WINDOWS, RateRule, Settings
from scoreboard.scoring.action_tokens import token_hash
from tests.auth_helpers import bearer, new_player

MAX_INCREASE = 100
PLAYERS = 3
MAX_OPEN = 3  # unspent tokens a player may hold


@dataclass
class ModelToken:
    token: str
    owner: int
    session: str
    state: str = "fresh"  # fresh | spent | expired
    first_body: dict[str, Any] | None = None  # the request that spent it
    first_answer: tuple[int, Any] | None = None  # (status, new_score or error code)


class ScoringMachine(RuleBasedStateMachine):
    base_settings: Settings

    tokens = Bundle("tokens")

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
            anticheat_pace={name: (10**12, 10**12) for name in PACE_WINDOWS},
            max_open_action_tokens=MAX_OPEN,
        )
        self.services = self.run(Services.open(config))
        app = create_app(config)
        app.state.services = self.services
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        self.players = [self.run(new_player(self.http)) for _ in range(PLAYERS)]
        self.scores = [0] * PLAYERS
        self.issued: list[ModelToken] = []

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        async def close() -> None:
            keys = [
                k async for k in self.services.redis.scan_iter(match=self.services.keys.pattern())
            ]
            if keys:
                await self.services.redis.delete(*keys)
            await self.http.aclose()
            await self.services.close()

        self.run(close())
        self.loop.close()

    def _update(self, player: int, token: str, body: dict[str, Any]) -> httpx.Response:
        headers = {**bearer(self.players[player]["access_token"]), "X-Action-Token": token}
        response: httpx.Response = self.run(
            self.http.post("/scores/update", json=body, headers=headers)
        )
        return response

    @rule(target=tokens, player=st.integers(0, PLAYERS - 1), session=st.sampled_from("ab"))
    def issue(self, player: int, session: str) -> ModelToken | MultipleResults[ModelToken]:
        held = sum(1 for t in self.issued if t.owner == player and t.state == "fresh")
        response = self.run(
            self.http.post(
                "/auth/action-token",
                json={"action_type": "game_completion", "session_id": session},
                headers=bearer(self.players[player]["access_token"]),
            )
        )
        if held >= MAX_OPEN:
            assert response.status_code == 429, response.text
            assert response.json()["error"]["details"]["reason"] == "open_action_tokens"
            return multiple()
        assert response.status_code == 200, response.text
        entry = ModelToken(response.json()["data"]["action_token"], player, session)
        self.issued.append(entry)
        return entry

    def _answer(self, response: httpx.Response) -> tuple[int, Any]:
        body = response.json()
        if body["success"]:
            return response.status_code, body["data"]["new_score"]
        return response.status_code, body["error"]["code"]

    def _spend(self, entry: ModelToken, body: dict[str, Any], response: httpx.Response) -> bool:
        """Check the answer to a spent or expired token; False for a fresh one."""
        if entry.state == "spent" and body == entry.first_body:
            assert self._answer(response) == entry.first_answer  # the retry, replayed
            return True
        if entry.state != "fresh":
            assert response.json()["error"]["code"] == "INVALID_ACTION_TOKEN"
            return True
        entry.state, entry.first_body = "spent", body
        entry.first_answer = self._answer(response)
        return False

    @rule(entry=tokens, increase=st.integers(1, MAX_INCREASE + 20))
    def submit(self, entry: ModelToken, increase: int) -> None:
        body = {"score_increase": increase}
        response = self._update(entry.owner, entry.token, body)
        if self._spend(entry, body, response):
            return
        code = response.json().get("error", {}).get("code")
        if increase > MAX_INCREASE:
            assert code == "SCORE_VALIDATION_FAILED"
            return
        assert response.status_code == 200, response.text
        self.scores[entry.owner] += increase
        assert response.json()["data"]["new_score"] == self.scores[entry.owner]

    @rule(entry=tokens, thief=st.integers(0, PLAYERS - 1))
    def submit_as_someone_else(self, entry: ModelToken, thief: int) -> None:
        if thief == entry.owner:
            return
        response = self._update(thief, entry.token, {"score_increase": 1})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "INVALID_ACTION_TOKEN"

    @rule(entry=tokens)
    def submit_with_the_wrong_session(self, entry: ModelToken) -> None:
        other = "b" if entry.session == "a" else "a"
        body = {"score_increase": 1, "session_id": other}
        response = self._update(entry.owner, entry.token, body)
        if not self._spend(entry, body, response):
            assert response.json()["error"]["code"] == "INVALID_ACTION_TOKEN"

    @rule(entry=tokens)
    def expire(self, entry: ModelToken) -> None:
        keys, hashed = self.services.keys, token_hash(entry.token)
        owner = self.players[entry.owner]["user_id"]
        self.run(self.services.redis.delete(keys.action_token(hashed)))
        self.run(self.services.redis.zrem(keys.open_tokens(owner), hashed))
        entry.state = "expired"  # gone: no more replays either

    @invariant()
    def reads_agree_with_the_model(self) -> None:
        top = self.run(self.http.get("/leaderboard/top10")).json()["data"]
        page = self.run(self.http.get("/leaderboard?limit=10")).json()["data"]
        expected = sorted((s for s in self.scores if s > 0), reverse=True)
        assert [e["score"] for e in top["leaderboard"]] == expected
        assert top["leaderboard"] == page["leaderboard"]
        assert top["total_players"] == len(expected)
        for entry in top["leaderboard"]:
            user = self.run(self.http.get(f"/scores/user/{entry['user_id']}")).json()["data"]
            assert (user["rank"], user["current_score"]) == (entry["rank"], entry["score"])
            around = self.run(
                self.http.get(f"/leaderboard/around/{entry['user_id']}?radius=0")
            ).json()["data"]
            assert around["rank"] == entry["rank"]


def test_scoring_matches_the_model(settings: Settings) -> None:
    ScoringMachine.base_settings = settings
    case = ScoringMachine.TestCase
    case.settings = hypothesis_settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    case().runTest()
