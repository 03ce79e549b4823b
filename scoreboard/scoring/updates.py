"""Score updates: strict input validation, then the one atomic script."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from scoreboard.auth.tokens import AccessClaims
from scoreboard.boards.catalogue import BoardConfig
from scoreboard.boards.runtime import BoardRuntimes
from scoreboard.core import patterns
from scoreboard.core.anticheat import AnticheatPolicy
from scoreboard.core.errors import (
    BoardNotFound,
    BoardUnavailable,
    InvalidActionToken,
    InvalidRequest,
)
from scoreboard.core.event_ids import new_event_id
from scoreboard.core.periods import CurrentPeriods
from scoreboard.core.settings import Settings
from scoreboard.scoring.action_tokens import (
    token_board,
    token_hash,
    validate_action_type,
    validate_session_id,
)
from scoreboard.storage.scripts import ScoreApplied, ScoreSubmission, ScoringPolicy, Scripts

DIGITS_RE = patterns.matcher(patterns.SCORE_INCREASE_TEXT)
MAX_ACTION_DATA_BYTES = 2048
MAX_DURATION_SECONDS = 86_400
MAX_LEVEL = 1_000_000
MAX_USER_AGENT_CHARS = 256
UPDATE_FIELDS = ("score_increase",)
UPDATE_OPTIONAL = ("action_type", "session_id", "action_data")
# the telemetry the plausibility checks read; any other key is refused, so a misspelt
# one cannot quietly turn a check off
ACTION_DATA_KEYS = frozenset({"level", "time_taken", "accuracy"})


@dataclass(frozen=True)
class RequestMeta:
    ip: str
    user_agent: str


def parse_increase(value: object, ceiling: int) -> int:
    """A JSON integer (as JSON Schema reads one: `5`, `5.0` and `5e0` are the same
    number), or a string of decimal digits without a leading zero, from 1 to the
    ceiling. Below 2^53 a whole JSON number is exact, so nothing is rounded."""
    if type(value) is int:
        number = value
    elif (type(value) is float and value.is_integer() and value <= ceiling) or (
        isinstance(value, str) and DIGITS_RE.match(value)
    ):
        number = int(value)
    else:
        number = 0
    if not 1 <= number <= ceiling:
        raise InvalidRequest(
            f"score_increase must be a whole number from 1 to {ceiling}",
            details={"field": "score_increase"},
        )
    return number


def _number(data: dict[str, Any], key: str) -> float | None:
    if key not in data:
        return None
    value = data[key]
    if type(value) not in (int, float) or not math.isfinite(value):
        raise InvalidRequest(f"action_data.{key} must be a number", details={"field": key})
    return float(value)


def parse_action_data(value: object) -> tuple[dict[str, Any], int | None, int | None]:
    """The action's telemetry, its claimed duration in microseconds and its level."""
    if not isinstance(value, dict):
        raise InvalidRequest("action_data must be an object", details={"field": "action_data"})
    unknown = sorted(set(value) - ACTION_DATA_KEYS)
    if unknown:
        raise InvalidRequest(
            f"action_data holds only {', '.join(sorted(ACTION_DATA_KEYS))}",
            details={"field": f"action_data.{unknown[0]}"},
        )
    if len(json.dumps(value)) > MAX_ACTION_DATA_BYTES:
        raise InvalidRequest(
            f"action_data must encode to at most {MAX_ACTION_DATA_BYTES} bytes",
            details={"field": "action_data"},
        )
    level = value.get("level")
    if "level" in value and (type(level) is not int or not 0 <= level <= MAX_LEVEL):
        raise InvalidRequest(
            f"action_data.level must be a whole number from 0 to {MAX_LEVEL}",
            details={"field": "level"},
        )
    accuracy = _number(value, "accuracy")
    if accuracy is not None and not 0 <= accuracy <= 1:
        raise InvalidRequest(
            "action_data.accuracy must be from 0 to 1", details={"field": "accuracy"}
        )
    taken = _number(value, "time_taken")
    if taken is not None and not 0 < taken <= MAX_DURATION_SECONDS:
        raise InvalidRequest(
            f"action_data.time_taken must be seconds, above 0 and at most {MAX_DURATION_SECONDS}",
            details={"field": "time_taken"},
        )
    return value, None if taken is None else int(taken * 1_000_000), level


def policy_from(settings: Settings, clock_offset_us: int = 0) -> ScoringPolicy:
    return ScoringPolicy(
        rate_rule=settings.rate_limit_score_update,
        ceiling=settings.score_ceiling,
        anticheat_mode=settings.anticheat_mode,
        anticheat=AnticheatPolicy.from_settings(settings),
        top_n=settings.live_top_n,
        period_grace_ms=settings.period_grace_seconds * 1000,
        clock_offset_us=clock_offset_us,
    )


def fingerprint(increase: int, session_id: str | None, action_type: str | None, data: str) -> str:
    """A digest of what the request asks for: an identical retry has the same one."""
    text = f"{increase}\x00{session_id or ''}\x00{action_type or ''}\x00{data}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Scored:
    board: str
    applied: ScoreApplied


class Scoring:
    def __init__(self, scripts: Scripts, settings: Settings, boards: BoardRuntimes) -> None:
        self._scripts = scripts
        self._settings = settings
        self._boards = boards
        self._policy = policy_from(settings, boards.clock.offset_ms * 1000)
        self._periods = CurrentPeriods()

    def _submission(
        self,
        claims: AccessClaims,
        token: str,
        body: dict[str, Any],
        meta: RequestMeta,
        board: BoardConfig,
    ) -> ScoreSubmission:
        increase = parse_increase(body["score_increase"], self._settings.score_ceiling)
        session_id = validate_session_id(body["session_id"]) if "session_id" in body else None
        action_type = (
            validate_action_type(body["action_type"], board.action_types)
            if "action_type" in body
            else None
        )
        action_data, claimed_us, level = (
            parse_action_data(body["action_data"]) if "action_data" in body else (None, None, None)
        )
        data_json = "" if action_data is None else json.dumps(action_data, separators=(",", ":"))
        return ScoreSubmission(
            user_id=claims.user_id,
            username=claims.username,
            session_id=session_id,
            action_type=action_type,
            increase=increase,
            token_hash=token_hash(token),
            claimed_duration_us=claimed_us,
            claimed_level=level,
            event_id=new_event_id(),
            ip=meta.ip,
            user_agent=meta.user_agent[:MAX_USER_AGENT_CHARS],
            action_data_json=data_json,
            fingerprint=fingerprint(increase, session_id, action_type, data_json),
        )

    async def submit(
        self, claims: AccessClaims, token: str, body: dict[str, Any], meta: RequestMeta
    ) -> Scored:
        """On the board the token was issued for, its all-time ranking and the current
        period of each of its periods."""
        try:
            board, runtime = await self._boards.board(token_board(token))
        except BoardNotFound:
            raise InvalidActionToken(details={"reason": "unknown_or_expired"}) from None
        submission = self._submission(claims, token, body, meta, board)
        try:
            now_ms = self._boards.now_ms()
            periods = tuple(self._periods.at(kind, now_ms) for kind in board.periods)
            applied = await self._scripts.submit_score(
                runtime.keys, submission, self._policy, periods
            )
        except BoardUnavailable:
            runtime.guard.poke()
            raise
        if not applied.replayed:
            runtime.leaderboard.apply(
                applied.epoch, applied.sequence, applied.total_players, applied.top
            )
        return Scored(board.name, applied)
