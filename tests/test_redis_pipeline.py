"""The auto-pipelining connection used for script calls."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scoreboard.errors import ServiceUnavailable
from scoreboard.keys import Keys
from scoreboard.redis_pipeline import PipelinedConnection
from scoreboard.scripts import Scripts
from scoreboard.settings import RateRule


async def test_concurrent_commands_get_their_own_replies(redis_url: str) -> None:
    conn = PipelinedConnection(redis_url, timeout=2)
    key = f"sbt{uuid.uuid4().hex[:10]}:echo"
    try:
        replies = await asyncio.gather(*(conn.execute("ECHO", f"m{i}") for i in range(500)))
        assert replies == [f"m{i}".encode() for i in range(500)]
        await conn.execute("SET", key, "1")
        assert await conn.execute("INCRBY", key, 41) == 42
    finally:
        await conn.execute("DEL", key)
        await conn.close()


async def test_scripts_reload_after_script_flush(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    conn = PipelinedConnection(redis_url, timeout=2)
    scripts = Scripts(client, conn)
    key = Keys(f"sbt{uuid.uuid4().hex[:10]}").rate_limit("t", "s")
    try:
        assert (await scripts.rate_limit(key, RateRule(2, 60))).remaining == 1
        await client.script_flush()
        assert (await scripts.rate_limit(key, RateRule(2, 60))).remaining == 0
    finally:
        await client.delete(key)
        await conn.close()
        await client.aclose()


async def test_an_unreachable_redis_is_service_unavailable() -> None:
    with contextlib.closing(__import__("socket").socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = PipelinedConnection(f"redis://127.0.0.1:{port}/0", timeout=1)
    scripts = Scripts(aioredis.Redis(), conn)
    with pytest.raises(ServiceUnavailable):
        await scripts.rate_limit("sbt:x", RateRule(1, 1))
    await conn.close()


async def test_a_silent_redis_times_out_and_the_next_call_reconnects(redis_url: str) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = PipelinedConnection(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises((RedisConnectionError, RedisTimeoutError)):
            await conn.execute("PING")
        assert asyncio.get_running_loop().time() - started < 2
        with pytest.raises((RedisConnectionError, RedisTimeoutError)):
            await conn.execute("PING")
        assert len(accepted) == 2
    finally:
        await conn.close()
        server.close()
        for writer in accepted:
            writer.close()
