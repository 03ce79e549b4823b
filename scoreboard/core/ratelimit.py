"""Rate-limit decisions, their headers and 429s; the limiter for the stand-alone rules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from scoreboard.core.errors import RateLimitExceeded
from scoreboard.core.settings import RateRule


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float

    @classmethod
    def refused(cls, rule: RateRule, retry_after: float, reset_after: float) -> RateDecision:
        return cls(False, rule.limit, 0, retry_after, reset_after)


def rate_headers(decision: RateDecision) -> dict[str, str]:
    """`RateLimit-*` headers sent on every limited response, refused or not."""
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset_after)),
    }


def refusal(decision: RateDecision) -> RateLimitExceeded:
    retry_after = max(1, math.ceil(decision.retry_after))
    headers = rate_headers(decision)
    headers["Retry-After"] = str(retry_after)
    return RateLimitExceeded(
        "Too many requests; retry later",
        details={"retry_after": retry_after},
        headers=headers,
    )


class RateCounter(Protocol):
    """What counts requests against a rule: the `rate_limit` script in Redis."""

    async def rate_limit(self, key: str, rule: RateRule) -> RateDecision: ...


class RateLimiter:
    def __init__(self, scripts: RateCounter) -> None:
        self._scripts = scripts

    async def hit(self, key: str, rule: RateRule) -> RateDecision:
        """Count one request against `rule`; raise RATE_LIMIT_EXCEEDED when refused."""
        decision = await self._scripts.rate_limit(key, rule)
        if not decision.allowed:
            raise refusal(decision)
        return decision
