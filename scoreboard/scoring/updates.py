"""Score updates: strict input validation, then the one atomic script."""

from __future__ import annotations

import dataclasses
import hashlib

import msgspec
from msgspec import UnsetType

from scoreboard.auth.tokens import AccessClaims
from scoreboard.boards.catalogue import BoardConfig
from scoreboard.boards.runtime import BoardRuntimes
from scoreboard.core import patterns, tracing
from scoreboard.core.anticheat import AnticheatPolicy
from scoreboard.core.contract import ActionData, ScoreUpdate
from scoreboard.core.errors import (
    BoardNotFound,
    BoardUnavailable,
    InvalidActionToken,
    InvalidRequest,
)
from scoreboard.core.event_ids import new_event_id
from scoreboard.core.periods import CurrentPeriods
from scoreboard.core.settings import Settings
from scoreboard.scoring import signatures
from scoreboard.scoring.action_tokens import (
    token_board,
    token_hash,
    validate_action_type,
    validate_session_id,
)
from scoreboard.storage.keys import BoardKeys
from scoreboard.storage.scripts import ScoreApplied, ScoreSubmission, ScoringPolicy, Scripts

DIGITS_RE = patterns.matcher(patterns.SCORE_INCREASE_TEXT)
MAX_USER_AGENT_CHARS = 256


class RequestMeta(msgspec.Struct, frozen=True):
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


def claimed(data: ActionData | UnsetType) -> tuple[str, int | None, int | None]:
    """The telemetry as stored with the event (JSON, '' for none), its claimed duration
    in microseconds and its level. Its keys and ranges were checked as it was read."""
    if isinstance(data, UnsetType):
        return "", None, None
    taken = None if isinstance(data.time_taken, UnsetType) else int(data.time_taken * 1_000_000)
    level = None if isinstance(data.level, UnsetType) else data.level
    return msgspec.json.encode(data).decode(), taken, level


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


class Scored(msgspec.Struct, frozen=True):
    board: str
    applied: ScoreApplied


class Scoring:
    def __init__(self, scripts: Scripts, settings: Settings, boards: BoardRuntimes) -> None:
        self._scripts = scripts
        self._settings = settings
        self._boards = boards
        self._policy = policy_from(settings, boards.clock.offset_ms * 1000)
        self._periods = CurrentPeriods()
        self._policies: dict[str, tuple[BoardConfig, ScoringPolicy]] = {}

    def _policy_for(self, board: BoardConfig) -> ScoringPolicy:
        """The policy with the board's own action types and anti-cheat rules, built once
        per version of the board (the catalogue keeps an unchanged board's config)."""
        known = self._policies.get(board.name)
        if known is not None and known[0] is board:
            return known[1]
        anticheat = AnticheatPolicy.from_settings(
            self._settings, board.action_types, board.anticheat
        )
        policy = dataclasses.replace(self._policy, anticheat=anticheat)
        self._policies[board.name] = (board, policy)
        return policy

    def _submission(
        self,
        claims: AccessClaims,
        token: str,
        body: ScoreUpdate,
        meta: RequestMeta,
        board: BoardConfig,
    ) -> ScoreSubmission:
        increase = parse_increase(body.score_increase, self._settings.score_ceiling)
        session_id = (
            None if isinstance(body.session_id, UnsetType) else validate_session_id(body.session_id)
        )
        action_type = (
            None
            if isinstance(body.action_type, UnsetType)
            else validate_action_type(body.action_type, board.action_types)
        )
        data_json, claimed_us, level = claimed(body.action_data)
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
            device=claims.device,
            trace=tracing.traceparent(),
        )

    async def submit(
        self,
        claims: AccessClaims,
        token: str,
        body: ScoreUpdate,
        meta: RequestMeta,
        signature: str | None = None,
    ) -> Scored:
        """On the board the token was issued for, its all-time ranking and the current
        period of each of its periods. A board with a game-server key needs `signature`
        (the X-Action-Signature header), checked before anything is spent."""
        try:
            board, runtime = await self._boards.board(token_board(token))
        except BoardNotFound:
            raise InvalidActionToken(details={"reason": "unknown_or_expired"}) from None
        submission = self._submission(claims, token, body, meta, board)
        if board.signing is not None:
            await self._check_signature(board, runtime.keys, token, submission, signature)
        try:
            now_ms = self._boards.now_ms()
            periods = tuple(self._periods.at(kind, now_ms) for kind in board.periods)
            with tracing.span("score script", {"scoreboard.board": board.name}):
                applied = await self._scripts.submit_score(
                    runtime.keys, submission, self._policy_for(board), periods
                )
        except BoardUnavailable:
            runtime.guard.poke()
            raise
        if not applied.replayed:
            runtime.leaderboard.apply(
                applied.epoch, applied.sequence, applied.total_players, applied.top
            )
        return Scored(board.name, applied)

    async def _check_signature(
        self,
        board: BoardConfig,
        keys: BoardKeys,
        token: str,
        submission: ScoreSubmission,
        signature: str | None,
    ) -> None:
        assert board.signing is not None
        max_age = self._settings.signature_max_age_seconds
        digest = signatures.check(
            board.signing,
            signature,
            token=token,
            user_id=submission.user_id,
            increase=submission.increase,
            now_s=self._boards.now_ms() / 1000,
            max_age_s=max_age,
        )
        # kept for as long as its timestamp could still pass
        if not await self._scripts.claim_signature(keys, digest, 2 * max_age + 1):
            raise signatures.replayed()
