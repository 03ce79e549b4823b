"""Rate-limit decisions, their headers and 429s; the limiter for the stand-alone rules,
and the leasing one for public reads."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from scoreboard.core.errors import RateLimitExceeded
from scoreboard.core.settings import RateRule


class RateDecision(NamedTuple):
    """One request's decision (a named tuple: made on every limited request, where a
    frozen dataclass cost three times as much)."""

    granted: int  # requests admitted by this decision (0: refused)
    limit: int
    remaining: int
    retry_after: float
    reset_after: float

    @property
    def allowed(self) -> bool:
        return self.granted > 0

    @classmethod
    def refused(cls, rule: RateRule, retry_after: float, reset_after: float) -> RateDecision:
        return cls(0, rule.limit, 0, retry_after, reset_after)


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

    async def rate_limit(
        self, key: str, rule: RateRule, wanted: int = 1, returned: int = 0
    ) -> RateDecision: ...


class RateLimiter:
    def __init__(self, scripts: RateCounter) -> None:
        self._scripts = scripts

    async def hit(self, key: str, rule: RateRule) -> RateDecision:
        """Count one request against `rule`; raise RATE_LIMIT_EXCEEDED when refused."""
        decision = await self._scripts.rate_limit(key, rule)
        if not decision.allowed:
            raise refusal(decision)
        return decision


LEASE_SECONDS = 1.0  # how long a worker may hold requests it took ahead
_MOST_LEASES = 10_000  # addresses whose leases a worker keeps at once


@dataclass(slots=True)
class _Lease:
    left: int  # requests taken ahead from Redis, not used yet
    remaining: int  # what Redis had left once they were taken
    reset_at: float  # when the bucket is full again (clock time)
    until: float  # when the requests left are given back (clock time)
    used: int  # requests this lease served
    size: int  # requests the lease was taken for


class LeasingLimiter:
    """A rule counted in Redis, with a busy subject's requests taken from its bucket a
    few at a time, so that most of its requests are admitted by this process alone.

    A subject's first request takes one. A lease used up within `LEASE_SECONDS` makes
    the next one twice its size (at most `most`); one that lasted longer makes the next
    one the size of what it served, or one after a quiet `LEASE_SECONDS`. Requests are
    counted in Redis before they are admitted, so no set of workers admits more than
    the bucket holds (a request taken ahead is used at most `LEASE_SECONDS` after it
    was counted). Requests of a lease still unused after `LEASE_SECONDS` are given back
    with the subject's next request to Redis; until then another worker's view of the
    bucket is short by them (at most `most`). With `most` 1 every request is counted
    in Redis as it comes, as `RateLimiter` does."""

    def __init__(
        self,
        scripts: RateCounter,
        most: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._scripts = scripts
        self._most = max(1, most)
        self._clock = clock
        self._leases: dict[str, _Lease] = {}

    async def hit(self, key: str, rule: RateRule) -> RateDecision:
        """Count one request against `rule`; raise RATE_LIMIT_EXCEEDED when refused."""
        now = self._clock()
        lease = self._leases.get(key)
        wanted, returned = 1, 0
        if lease is not None:
            if now < lease.until:
                if lease.left > 0:
                    lease.left -= 1
                    lease.used += 1
                    reset_after = max(0.0, lease.reset_at - now)
                    return RateDecision(
                        1, rule.limit, lease.remaining + lease.left, 0.0, reset_after
                    )
                wanted = lease.size * 2  # used up in time
            else:
                if now < lease.until + LEASE_SECONDS:  # still busy, less so
                    wanted = lease.used
                returned, lease.left = lease.left, 0
        wanted = max(1, min(wanted, self._most, rule.limit))
        decision = await self._scripts.rate_limit(key, rule, wanted, returned)
        if not decision.allowed:
            raise refusal(decision)
        self._keep(key, decision, self._clock())
        return RateDecision(
            1,
            rule.limit,
            decision.remaining + decision.granted - 1,
            0.0,
            decision.reset_after,
        )

    def _keep(self, key: str, decision: RateDecision, now: float) -> None:
        lease = self._leases.pop(key, None)
        left = decision.granted - 1
        if lease is not None and now < lease.until:
            left += lease.left  # another request of the subject took a lease meanwhile
        if len(self._leases) >= _MOST_LEASES:
            self._forget_old(now)
        self._leases[key] = _Lease(
            left=left,
            remaining=decision.remaining,
            reset_at=now + decision.reset_after,
            until=now + LEASE_SECONDS,
            used=1,
            size=decision.granted,
        )

    def _forget_old(self, now: float) -> None:
        """Drop leases past use (and, if every one is in use, the oldest half); their
        unused requests come back to the subject's bucket as it refills."""
        stale = [key for key, lease in self._leases.items() if now >= lease.until]
        for key in stale:
            del self._leases[key]
        if len(self._leases) >= _MOST_LEASES:
            for key in list(self._leases)[: _MOST_LEASES // 2]:
                del self._leases[key]
