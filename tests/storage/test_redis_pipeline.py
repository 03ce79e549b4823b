"""The lean Redis connections: auto-pipelined script calls and the pub/sub subscription."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scoreboard.boards.feed import BoardFeed
from scoreboard.core.errors import ServiceUnavailable
from scoreboard.core.settings import RateRule
from scoreboard.storage.keys import Keys
from scoreboard.storage.pipeline import PipelinedConnection, Subscription, never_sent
from scoreboard.storage.scripts import Scripts
from tests.pg_proxy import CuttableProxy


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


async def test_a_retired_connection_answers_what_was_sent_then_refuses_and_closes(
    redis_url: str,
) -> None:
    """A connection to a master a failover demoted is retired: what it already sent
    gets its answer, a new command is refused as never sent (the caller may send it
    elsewhere), and the connection closes."""
    connection = PipelinedConnection(redis_url, 2.0)
    key = f"sbt:retire:{uuid.uuid4().hex}"
    try:
        sent = asyncio.ensure_future(connection.execute("BLPOP", key, "0.2"))
        await asyncio.sleep(0.05)
        await connection.retire()
        assert sent.done() and await sent is None  # answered before the close
        with pytest.raises(RedisConnectionError) as refused:
            await connection.execute("PING")
        assert never_sent(refused.value)
        assert connection._protocol is not None and connection._protocol.transport.is_closing()
    finally:
        await connection.close()


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


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_subscription_holds_messages_until_delivery_starts(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    prefix = f"sbt{uuid.uuid4().hex[:10]}"
    channels = [f"{prefix}:a", f"{prefix}:b"]
    subscription = Subscription(redis_url, timeout=2)
    got: list[tuple[bytes, bytes]] = []
    try:
        await subscription.open(channels)
        for index in range(3):
            await client.publish(channels[index % 2], f"early{index}")
        await asyncio.sleep(0.2)
        assert got == []
        subscription.deliver(lambda channel, data: got.append((channel, data)))
        await client.publish(channels[1], "late")
        await _until(lambda: len(got) == 4)
        assert [data for _, data in got] == [b"early0", b"early1", b"early2", b"late"]
        assert got[3][0] == channels[1].encode()
    finally:
        await subscription.close()
        await client.aclose()


async def test_a_cut_subscription_is_reported_and_the_feed_subscribes_again(
    redis_url: str,
) -> None:
    target = urlsplit(redis_url)
    proxy = CuttableProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    via_proxy = f"redis://127.0.0.1:{proxy.port}{target.path}"
    subscription = Subscription(via_proxy, timeout=1)
    try:
        await subscription.open(["sbt:cut"])
        subscription.deliver(lambda channel, data: None)
        watching = asyncio.create_task(subscription.watch(ping_every=0.2))
        await asyncio.sleep(0.3)
        assert not watching.done()
        await proxy.cut()
        with pytest.raises((RedisConnectionError, RedisTimeoutError)):
            await asyncio.wait_for(watching, 5)
    finally:
        await subscription.close()

    class Listener:
        def __init__(self) -> None:
            self.events: list[int] = []
            self.connects = 0
            self.disconnects = 0

        def wants(self, seq: int) -> bool:
            return True

        def on_event(self, event: object) -> None:
            self.events.append(getattr(event, "seq", -1))

        async def on_connected(self) -> None:
            self.connects += 1

        def on_disconnected(self) -> None:
            self.disconnects += 1

    await proxy.restore()
    keys = Keys(f"sbt{uuid.uuid4().hex[:10]}")
    client = aioredis.Redis.from_url(redis_url)
    feed = BoardFeed(client, keys, url=via_proxy)
    listener = Listener()
    feed.add_listener(listener)
    await feed.start()
    try:
        await _until(lambda: feed.connected)
        await proxy.cut()
        await _until(lambda: listener.disconnects == 1)
        await proxy.restore()
        await _until(lambda: feed.connected and listener.connects == 2, within=10)
        body = (
            '{"seq": "7", "id": "1-0", "board": "global", "user_id": "u", "username": "n",'
            ' "delta": "1", "old_score": "0", "new_score": "1", "old_rank": "0",'
            ' "new_rank": "1", "ts": "1", "total": "1", "epoch": "e1"}'
        )
        await client.spublish(keys.updates_channel(), f"7 {body}")
        await _until(lambda: listener.events == [7])
    finally:
        await feed.stop()
        await client.aclose()
        await proxy.cut()
