"""The leasing limiter of public reads, on real Redis and fakeredis: a busy address's
reads are counted a few at a time, never more than its bucket holds."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from scoreboard.core import ratelimit
from scoreboard.core.errors import RateLimitExceeded
from scoreboard.core.ratelimit import LEASE_SECONDS, LeasingLimiter, RateDecision
from scoreboard.core.settings import RateRule
from scoreboard.storage.keys import Keys
from scoreboard.storage.scripts import Scripts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """The scripts, counting the rate-limit calls that reach Redis."""

    def __init__(self, scripts: Scripts) -> None:
        self.scripts, self.calls = scripts, 0

    async def rate_limit(
        self, key: str, rule: RateRule, wanted: int = 1, returned: int = 0
    ) -> RateDecision:
        self.calls += 1
        return await self.scripts.rate_limit(key, rule, wanted, returned)


def _key() -> str:
    return Keys(f"sbt{uuid.uuid4().hex[:10]}").rate_limit("leaderboard", "198.51.100.7")


async def _admitted(limiter: LeasingLimiter, key: str, rule: RateRule) -> bool:
    try:
        await limiter.hit(key, rule)
    except RateLimitExceeded:
        return False
    return True


async def test_a_busy_address_is_counted_in_redis_a_few_reads_at_a_time(
    lua_backend: aioredis.Redis,
) -> None:
    counting, key, rule = Counting(Scripts(lua_backend)), _key(), RateRule(1000, 86_400)
    limiter = LeasingLimiter(counting, 32, clock=Clock())
    decisions = [await limiter.hit(key, rule) for _ in range(200)]
    assert all(d.allowed for d in decisions)
    assert counting.calls <= 12  # 1, 2, 4, 8, 16, then 32 at a time
    remaining = [d.remaining for d in decisions]
    assert remaining == list(range(rule.limit - 1, rule.limit - 201, -1))
    await lua_backend.delete(key)


async def test_one_worker_admits_exactly_the_burst(lua_backend: aioredis.Redis) -> None:
    key, rule = _key(), RateRule(10, 60)
    limiter = LeasingLimiter(Scripts(lua_backend), 32, clock=Clock())
    decisions: list[RateDecision | None] = []
    for _ in range(14):
        try:
            decisions.append(await limiter.hit(key, rule))
        except RateLimitExceeded as refused:
            assert refused.headers["RateLimit-Remaining"] == "0"
            decisions.append(None)
    assert [d.remaining if d else None for d in decisions] == [*range(9, -1, -1)] + [None] * 4
    await lua_backend.delete(key)


async def test_workers_sharing_an_address_never_admit_more_than_its_bucket(
    lua_backend: aioredis.Redis,
) -> None:
    scripts, key, rule = Scripts(lua_backend), _key(), RateRule(50, 60)
    workers = [LeasingLimiter(scripts, 32, clock=Clock()) for _ in range(3)]

    async def reads(worker: LeasingLimiter) -> int:
        admitted = 0
        for _ in range(60):
            admitted += await _admitted(worker, key, rule)
            await asyncio.sleep(0)
        return admitted

    counts = await asyncio.gather(*(reads(worker) for worker in workers))
    assert sum(counts) == rule.limit  # every read taken ahead was used, none more
    await lua_backend.delete(key)


async def test_reads_taken_ahead_and_not_used_are_given_back(lua_backend: aioredis.Redis) -> None:
    scripts, key, rule, clock = Scripts(lua_backend), _key(), RateRule(100, 60), Clock()
    busy = LeasingLimiter(scripts, 32, clock=clock)
    for _ in range(4):  # leases of 1, 2, then 4: three of the last left unused
        await busy.hit(key, rule)
    other = LeasingLimiter(scripts, 32, clock=clock)
    assert (await other.hit(key, rule)).remaining == 100 - (1 + 2 + 4) - 1
    clock.now += LEASE_SECONDS + 0.01
    await busy.hit(key, rule)  # gives the three back, takes what the last lease served
    assert (await other.hit(key, rule)).remaining == 100 - 5 - 2  # the reads made
    await lua_backend.delete(key)


async def test_a_steady_address_under_its_limit_is_never_refused(
    lua_backend: aioredis.Redis,
) -> None:
    key, rule = _key(), RateRule(5, 1)  # five a second, a burst of five
    limiter = LeasingLimiter(Scripts(lua_backend), 32)
    admitted = []
    for _ in range(10):
        admitted.append(await _admitted(limiter, key, rule))
        await asyncio.sleep(0.22)
    assert all(admitted)
    await lua_backend.delete(key)


async def test_a_lease_of_one_counts_every_read_in_redis(lua_backend: aioredis.Redis) -> None:
    counting, key, rule = Counting(Scripts(lua_backend)), _key(), RateRule(100, 60)
    limiter = LeasingLimiter(counting, 1, clock=Clock())
    for _ in range(20):
        await limiter.hit(key, rule)
    assert counting.calls == 20
    await lua_backend.delete(key)


class Granting:
    async def rate_limit(
        self, key: str, rule: RateRule, wanted: int = 1, returned: int = 0
    ) -> RateDecision:
        return RateDecision(wanted, rule.limit, rule.limit - wanted, 0.0, 1.0)


async def test_leases_of_many_addresses_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "_MOST_LEASES", 100)
    clock = Clock()
    limiter = LeasingLimiter(Granting(), 32, clock=clock)
    for n in range(1000):
        await limiter.hit(f"ip{n}", RateRule(10, 60))
        clock.now += 0.001
    assert len(limiter._leases) <= 100
