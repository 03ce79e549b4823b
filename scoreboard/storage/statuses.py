"""What the Lua scripts answer with, and the one place where a status becomes an error.

Every reply starts with a status (declared in the script as `S_*`). A status is either an
answer its script's wrapper reads (`ANSWERS`) or a refusal, turned into an error here and
nowhere else; a test checks every status each script's header lists against both."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from scoreboard.core.anticheat import parse_reasons
from scoreboard.core.errors import (
    NOT_APPLIED,
    BoardUnavailable,
    InsufficientPermissions,
    InvalidActionToken,
    InvalidRequest,
    RateLimitExceeded,
    ScoreboardError,
    ScoreValidationFailed,
    ServiceUnavailable,
)
from scoreboard.core.ratelimit import RateDecision, refusal
from scoreboard.core.settings import RateRule
from scoreboard.storage.redis_client import as_text


class ScriptStatus(StrEnum):
    """Every status a script in `lua/` can answer with (declared there as `S_*`)."""

    OK = "OK"
    BOARD_NOT_READY = "BOARD_NOT_READY"
    BOARD_LOST = "BOARD_LOST"
    REPLAYED = "REPLAYED"
    REBUILDING = "REBUILDING"
    RATE_LIMITED = "RATE_LIMITED"
    TOKEN_EXISTS = "TOKEN_EXISTS"  # noqa: S105 (a status, not a password)
    TOKEN_UNKNOWN = "TOKEN_UNKNOWN"  # noqa: S105
    TOKEN_NOT_OWNED = "TOKEN_NOT_OWNED"  # noqa: S105
    TOKEN_USED = "TOKEN_USED"  # noqa: S105
    TOKEN_MISMATCH = "TOKEN_MISMATCH"  # noqa: S105
    ABOVE_MAX = "ABOVE_MAX"
    OVERFLOW = "OVERFLOW"
    ANTICHEAT_REJECTED = "ANTICHEAT_REJECTED"
    NOT_RANKED = "NOT_RANKED"
    BANNED = "BANNED"
    NEGATIVE = "NEGATIVE"
    PERIOD_MOVED = "PERIOD_MOVED"
    TOO_MANY_OPEN = "TOO_MANY_OPEN"


S = ScriptStatus
# statuses a script's wrapper reads as answers rather than refusals (OK: every script)
ANSWERS: dict[str, frozenset[ScriptStatus]] = {
    "submit_score": frozenset({S.REPLAYED, S.PERIOD_MOVED}),
    "check_board": frozenset({S.BOARD_NOT_READY, S.BOARD_LOST}),
    "trim_stream": frozenset({S.REBUILDING}),
    "read_around": frozenset({S.NOT_RANKED}),
}

Refusal = Callable[[list[Any], RateRule | None], ScoreboardError]


def _board_unavailable(reply: list[Any], rule: RateRule | None) -> ScoreboardError:
    # lost: the script deleted the state, and the guard heals it; rebuilding: wait
    return BoardUnavailable()


def _rate_limited(reply: list[Any], rule: RateRule | None) -> ScoreboardError:
    assert rule is not None, "a script that rate-limits is called with its rule"
    return refusal(RateDecision.refused(rule, int(reply[1]) / 1e6, int(reply[2]) / 1e6))


def _too_many_open(reply: list[Any], rule: RateRule | None) -> ScoreboardError:
    # not a rate-limit hit (nothing was counted): the player holds the most unspent
    # tokens allowed, and one frees up when it is spent or, at the latest, expires
    retry_after = max(1, math.ceil(int(reply[1]) / 1e6))
    return RateLimitExceeded(
        "You hold the most unspent action tokens allowed; spend one first",
        details={"reason": "open_action_tokens", "retry_after": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def _token_exists(reply: list[Any], rule: RateRule | None) -> ScoreboardError:
    # two random 256-bit tokens met: nothing was stored, and asking again succeeds
    return ServiceUnavailable(
        "The action token could not be stored; ask for another", outcome=NOT_APPLIED
    )


def _mismatch(reply: list[Any], rule: RateRule | None) -> ScoreboardError:
    bound = as_text(reply[1])
    return InvalidActionToken(
        f"The action token is bound to another {bound}", details={"reason": f"{bound}_mismatch"}
    )


def _above_max(reply: list[Any], rule: RateRule | None) -> ScoreboardError:
    return ScoreValidationFailed(
        "score_increase is above the action token's maximum",
        details={"reason": "above_max", "max_score_increase": int(reply[1])},
    )


def _overflow(reply: list[Any], rule: RateRule | None) -> ScoreboardError:
    return ScoreValidationFailed(
        "The new total would pass the score ceiling",
        details={"reason": "overflow", "ceiling": int(reply[1])},
    )


def _implausible(reply: list[Any], rule: RateRule | None) -> ScoreboardError:
    return ScoreValidationFailed(
        "The score update was rejected as implausible",
        details={
            "reason": as_text(reply[1]),
            "risk_score": float(reply[2]),
            "reasons": [reason.as_dict() for reason in parse_reasons(as_text(reply[3]))],
        },
    )


def _below_zero(reply: list[Any], rule: RateRule | None) -> ScoreboardError:
    return InvalidRequest(
        "The adjustment would take the score below 0",
        details={"field": "delta", "current_score": int(reply[1])},
    )


def _adjusted_past_ceiling(reply: list[Any], rule: RateRule | None) -> ScoreboardError:
    return InvalidRequest(
        "The adjustment would take the score past the ceiling",
        details={"field": "delta", "ceiling": int(reply[1])},
    )


REFUSALS: dict[ScriptStatus, Refusal] = {
    S.BOARD_NOT_READY: _board_unavailable,
    S.BOARD_LOST: _board_unavailable,
    S.REBUILDING: _board_unavailable,
    S.BANNED: lambda reply, rule: InsufficientPermissions("This account is suspended"),
    S.RATE_LIMITED: _rate_limited,
    S.TOO_MANY_OPEN: _too_many_open,
    S.TOKEN_EXISTS: _token_exists,
    S.TOKEN_UNKNOWN: lambda reply, rule: InvalidActionToken(
        details={"reason": "unknown_or_expired"}
    ),
    S.TOKEN_NOT_OWNED: lambda reply, rule: InvalidActionToken(
        details={"reason": "unknown_or_expired"}
    ),
    S.TOKEN_USED: lambda reply, rule: InvalidActionToken(details={"reason": "already_used"}),
    S.TOKEN_MISMATCH: _mismatch,
    S.ABOVE_MAX: _above_max,
    S.OVERFLOW: _overflow,
    S.ANTICHEAT_REJECTED: _implausible,
    S.NEGATIVE: _below_zero,
}
# where one script's refusal means something else than the same status elsewhere
SCRIPT_REFUSALS: dict[tuple[str, ScriptStatus], Refusal] = {
    ("adjust_score", S.OVERFLOW): _adjusted_past_ceiling,
}


def status_of(reply: list[Any]) -> ScriptStatus:
    return ScriptStatus(as_text(reply[0]))


def refused(script: str, reply: list[Any], rule: RateRule | None = None) -> ScoreboardError:
    """The error a script's refusal maps to."""
    status = status_of(reply)
    build = SCRIPT_REFUSALS.get((script, status)) or REFUSALS.get(status)
    if build is None:
        return ScoreboardError(f"{script}: unexpected status {status}")
    return build(reply, rule)
