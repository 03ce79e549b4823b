"""Drives the scoring scripts directly, with a key prefix of the test's own."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace

import redis.asyncio as aioredis

from scoreboard.core.anticheat import AnticheatPolicy, PaceWindow, PopulationPolicy
from scoreboard.core.periods import period_at
from scoreboard.core.settings import RateRule
from scoreboard.scoring.updates import fingerprint
from scoreboard.storage.keys import DEFAULT_BOARD, BoardKeys, Keys
from scoreboard.storage.scripts import ScoreApplied, ScoreSubmission, ScoringPolicy, Scripts

GENEROUS = RateRule(1000, 60)
POLICY = ScoringPolicy(
    rate_rule=GENEROUS,
    ceiling=2**53 - 1,
    anticheat_mode="enforce",
    # every check but the hard ones out of the way; the anti-cheat tests set their own
    anticheat=AnticheatPolicy(
        windows=(),
        rates={},
        min_history=10**9,
        run=10**9,
        population=PopulationPolicy(default=1e12, min_players=10**9),
    ),
    top_n=3,
)


HISTORY_FIELDS = (
    "last_us", "play_us", "played_us", "n", "mean", "m2", "run", "gap_us", "wait_us", "pop",
    "sig",
)  # fmt: skip


async def read_history(client: aioredis.Redis, key: str) -> dict[str, str]:
    """A player's anti-cheat history as lua/include/anticheat.lua lays out its one field:
    the scalars by name (absent ones left out), then `paces`, the windows' entries."""
    text = (await client.hget(key, "h") or b"").decode()
    if not text:
        return {}
    values = text.split(" ", len(HISTORY_FIELDS))
    history = {name: value for name, value in zip(HISTORY_FIELDS, values, strict=False) if value}
    history["paces"] = values[-1]
    return history


def pace(reject: int, *, flag: int | None = None, us: int = 60_000_000) -> tuple[PaceWindow]:
    """One pace window, `points_per_minute` unless `us` says otherwise: flag above
    `flag` (never, by default), reject above `reject`."""
    check = "points_per_minute" if us == 60_000_000 else "points_per_window"
    return (PaceWindow(check, us, reject if flag is None else flag, reject),)


@dataclass
class Board:
    client: aioredis.Redis
    keys: Keys = field(default_factory=lambda: Keys(f"sbt{uuid.uuid4().hex[:10]}"))
    board: str = DEFAULT_BOARD
    policy: ScoringPolicy = POLICY
    periods: tuple[str, ...] = ()
    _ready: bool = False

    @property
    def scripts(self) -> Scripts:
        return Scripts(self.client)

    def token_key(self, token: str) -> str:
        return self.keys.action_token(hashlib.sha256(token.encode()).hexdigest(), self.board)

    @property
    def board_keys(self) -> BoardKeys:
        return self.keys.board(self.board)

    async def issue(
        self,
        user_id: str,
        *,
        session_id: str = "s1",
        action_type: str = "game_completion",
        max_increase: int = 100,
        ttl_ms: int = 300_000,
        rule: RateRule = GENEROUS,
        max_open: int = 10_000,
        device: str = "",
    ) -> str:
        token = secrets.token_urlsafe(32)
        await self.scripts.issue_action_token(
            self.board_keys,
            rule,
            user_id=user_id,
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            session_id=session_id,
            action_type=action_type,
            max_increase=max_increase,
            ttl_ms=ttl_ms,
            max_open=max_open,
            device=device,
        )
        return token

    async def make_ready(self) -> None:
        """An empty board's state, as a first rebuild leaves it."""
        await self.client.hset(
            self.keys.board_state(self.board), mapping={"epoch": "e1", "seq": 0, "players": 0}
        )
        self._ready = True

    async def submit(
        self,
        user_id: str,
        token: str,
        increase: int,
        *,
        session_id: str | None = None,
        action_type: str | None = None,
        claimed_duration_us: int | None = None,
        claimed_level: int | None = None,
        action_data_json: str = "",
        policy: ScoringPolicy | None = None,
        device: str = "",
        trace: str = "",
    ) -> ScoreApplied:
        submission = ScoreSubmission(
            user_id=user_id,
            username=f"name-{user_id[:8]}",
            session_id=session_id,
            action_type=action_type,
            increase=increase,
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            claimed_duration_us=claimed_duration_us,
            event_id=str(uuid.uuid4()),
            ip="127.0.0.1",
            user_agent="board-test",
            action_data_json=action_data_json,
            fingerprint=fingerprint(increase, session_id, action_type, action_data_json),
            claimed_level=claimed_level,
            device=device,
            trace=trace,
        )
        if not self._ready:
            await self.make_ready()
        policy = policy or self.policy
        now_ms = int(time.time() * 1000) + policy.clock_offset_us // 1000
        periods = tuple(period_at(kind, now_ms) for kind in self.periods)
        return await self.scripts.submit_score(self.board_keys, submission, policy, periods)

    def with_policy(self, **changes: object) -> ScoringPolicy:
        return replace(self.policy, **changes)  # type: ignore[arg-type]

    def with_anticheat(self, **changes: object) -> ScoringPolicy:
        """The board's policy with these anti-cheat thresholds changed."""
        return replace(self.policy, anticheat=replace(self.policy.anticheat, **changes))  # type: ignore[arg-type]

    async def cleanup(self) -> None:
        keys = [key async for key in self.client.scan_iter(match=self.keys.pattern())]
        if keys:
            await self.client.delete(*keys)
