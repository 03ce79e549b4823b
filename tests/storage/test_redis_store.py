"""The Redis edge: reply errors mapped to 503s, and a consumer group's lag that holds
across an AOF reload."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError

from scoreboard.core.errors import ServiceUnavailable
from scoreboard.storage.redis_client import consumer_lag, redis_errors
from tests.private_redis import private_redis


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), "memory"),
        (ReadOnlyError("You can't write against a read only replica."), "read-only"),
        (ResponseError("BUSY Redis is busy running a script."), "busy"),
        (ResponseError("LOADING Redis is loading the dataset in memory"), "loading"),
        (ResponseError("OOM command not allowed"), "memory"),  # as the pipeline raises it
    ],
)
async def test_reply_errors_that_mean_not_now_are_503s(error: Exception, said: str) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        async with redis_errors():
            raise error
    assert said in caught.value.message


async def test_other_reply_errors_stay_bugs() -> None:
    with pytest.raises(ResponseError):
        async with redis_errors():
            raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind")


async def test_a_drained_group_has_no_lag_after_an_aof_reload(tmp_path: Path) -> None:
    """Redis 7.0 reported a lag of 40 on an empty, fully delivered stream after it
    restarted from its AOF; the syncer's health and alerts would have believed it."""
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    with private_redis(tmp_path / "redis", *aof) as server:
        client = aioredis.Redis(port=server.port)
        await client.xgroup_create("s", "g", id="0", mkstream=True)
        for i in range(100):
            await client.xadd("s", {"n": i})
        for count, keep_from in ((60, None), (100, "99999999999999-0")):
            reply = await client.xreadgroup("g", "c", {"s": ">"}, count=count)
            ids = [entry_id for entry_id, _ in reply[0][1]]
            await client.xack("s", "g", *ids)
            await client.xtrim("s", minid=keep_from or ids[-1].decode(), approximate=False)
            if keep_from is None:
                await client.bgrewriteaof()
                server.wait_for_rewrite()
        await client.aclose()
        server.kill()
        server.start()
        client = aioredis.Redis(port=server.port)
        group = (await client.xinfo_groups("s"))[0]
        assert await consumer_lag(client, "s", group) == 0
        await client.xadd("s", {"n": "new"})
        group = (await client.xinfo_groups("s"))[0]
        assert await consumer_lag(client, "s", group) == 1
        await client.aclose()
