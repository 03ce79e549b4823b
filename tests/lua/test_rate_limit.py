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


async def test_takes_several_at_once_up_to_what_the_bucket_holds(
    lua_backend: aioredis.Redis,
) -> None:
    scripts, key, rule = Scripts(lua_backend), _key(), RateRule(10, 60)
    four = await scripts.rate_limit(key, rule, wanted=4)
    assert (four.allowed, four.granted, four.remaining) == (True, 4, 6)
    rest = await scripts.rate_limit(key, rule, wanted=8)
    assert (rest.allowed, rest.granted, rest.remaining) == (True, 6, 0)
    refused = await scripts.rate_limit(key, rule, wanted=3)
    assert (refused.allowed, refused.granted) == (False, 0)
    assert 5 <= refused.retry_after <= 6
    await lua_backend.delete(key)


async def test_requests_given_back_are_admitted_again(lua_backend: aioredis.Redis) -> None:
    scripts, key, rule = Scripts(lua_backend), _key(), RateRule(10, 60)
    assert (await scripts.rate_limit(key, rule, wanted=10)).granted == 10
    assert not (await scripts.rate_limit(key, rule)).allowed
    again = await scripts.rate_limit(key, rule, wanted=1, returned=3)
    assert (again.granted, again.remaining) == (1, 2)
    await lua_backend.delete(key)


async def test_giving_back_never_fills_more_than_the_bucket(lua_backend: aioredis.Redis) -> None:
    scripts, key, rule = Scripts(lua_backend), _key(), RateRule(5, 60)
    assert (await scripts.rate_limit(key, rule)).granted == 1
    many = await scripts.rate_limit(key, rule, wanted=9, returned=50)
    assert (many.granted, many.remaining) == (5, 0)
    await lua_backend.delete(key)


async def test_requests_given_back_are_counted_once(lua_backend: aioredis.Redis) -> None:
    scripts, key, rule = Scripts(lua_backend), _key(), RateRule(4, 60)
    assert (await scripts.rate_limit(key, rule, wanted=4)).granted == 4
    refused = await scripts.rate_limit(key, rule, wanted=2, returned=1)
    assert refused.granted == 1  # the one given back
    assert not (await scripts.rate_limit(key, rule)).allowed
    await lua_backend.delete(key)


async def test_parallel_takes_never_exceed_the_limit(lua_backend: aioredis.Redis) -> None:
    scripts, key, rule = Scripts(lua_backend), _key(), RateRule(10, 60)
    decisions = await asyncio.gather(*(scripts.rate_limit(key, rule, wanted=3) for _ in range(20)))
    assert sum(d.granted for d in decisions) == 10
    await lua_backend.delete(key)
