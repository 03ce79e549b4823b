"""Named rate-limit rules, checked in Redis, turned into headers and 429s."""

from __future__ import annotations

import math

from scoreboard.errors import RateLimitExceeded
from scoreboard.scripts import RateDecision, Scripts
from scoreboard.settings import RateRule


def rate_headers(decision: RateDecision) -> dict[str, str]:
    """`RateLimit-*` headers sent on every limited response, refused or not."""
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset_after)),
    }


class RateLimiter:
    def __init__(self, scripts: Scripts) -> None:
        self._scripts = scripts

    async def hit(self, key: str, rule: RateRule) -> RateDecision:
        """Count one request against `rule`; raise RATE_LIMIT_EXCEEDED when refused."""
        decision = await self._scripts.rate_limit(key, rule)
        if not decision.allowed:
            headers = rate_headers(decision)
            headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
            raise RateLimitExceeded(
                "Too many requests; retry later",
                details={"retry_after": max(1, math.ceil(decision.retry_after))},
                headers=headers,
            )
        return decision
