"""lua/rate_limit.lua on real Redis and fakeredis."""

from __future__ import annotations

import asyncio
import uuid

import redis.asyncio as aioredis

from scoreboard.core.settings import RateRule
from scoreboard.storage.keys import Keys
from scoreboard.storage.scripts import Scripts


def _key() -> str:
    return Keys(f"sbt{uuid.uuid4().hex[:10]}").rate_limit("test", "subject")


async def test_admits_a_burst_of_limit_then_refuses(lua_backend: aioredis.Redis) -> None:
    scripts, key, rule = Scripts(lua_backend), _key(), RateRule(5, 60)
    decisions = [await scripts.rate_limit(key, rule) for _ in range(7)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    refused = decisions[-1]
    assert 11 <= refused.retry_after <= 12
    assert 59 <= refused.reset_after <= 60
    await lua_backend.delete(key)


async def test_refills_evenly_over_the_period(lua_backend: aioredis.Redis) -> None:
    scripts, key, rule = Scripts(lua_backend), _key(), RateRule(2, 1)
    assert (await scripts.rate_limit(key, rule)).allowed
    assert (await scripts.rate_limit(key, rule)).allowed
    assert not (await scripts.rate_limit(key, rule)).allowed
    await asyncio.sleep(0.55)
    assert (await scripts.rate_limit(key, rule)).allowed
    assert not (await scripts.rate_limit(key, rule)).allowed
    await lua_backend.delete(key)


async def test_state_expires_when_the_bucket_is_full_again(lua_backend: aioredis.Redis) -> None:
    scripts, key = Scripts(lua_backend), _key()
    await scripts.rate_limit(key, RateRule(10, 60))
    ttl_ms = await lua_backend.pttl(key)
    assert 5000 < ttl_ms <= 6000
    await lua_backend.delete(key)


async def test_parallel_requests_never_exceed_the_limit(lua_backend: aioredis.Redis) -> None:
    scripts, key, rule = Scripts(lua_backend), _key(), RateRule(10, 60)
    decisions = await asyncio.gather(*(scripts.rate_limit(key, rule) for _ in range(100)))
    assert sum(d.allowed for d in decisions) == 10
    await lua_backend.delete(key)


async def test_subjects_do_not_share_state(lua_backend: aioredis.Redis) -> None:
    scripts, rule = Scripts(lua_backend), RateRule(1, 60)
    keys = Keys(f"sbt{uuid.uuid4().hex[:10]}")
    first, second = keys.rate_limit("r", "alice"), keys.rate_limit("r", "bob")
    assert (await scripts.rate_limit(first, rule)).allowed
    assert (await scripts.rate_limit(second, rule)).allowed
    assert not (await scripts.rate_limit(first, rule)).allowed
    await lua_backend.delete(first, second)


async def test_scripts_come_back_after_script_flush(lua_backend: aioredis.Redis) -> None:
    scripts, key, rule = Scripts(lua_backend), _key(), RateRule(3, 60)
    assert (await scripts.rate_limit(key, rule)).allowed
    await lua_backend.script_flush()
    decision = await scripts.rate_limit(key, rule)
    assert decision.allowed and decision.remaining == 1
    await lua_backend.delete(key)
