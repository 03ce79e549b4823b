"""Revoked login sessions, known to every process without a round trip per request.

A revocation is added to a Redis sorted set (scored by when the session's last access
token expires) and published. Each process loads the set when its subscription comes
up and follows the channel; while the subscription is down it asks Redis instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from scoreboard.storage.keys import Keys
from scoreboard.storage.redis_client import RedisClient, as_text, redis_errors

PRUNE_EVERY = 1024


def _now_ms() -> int:
    return int(time.time() * 1000)


class Revocations:
    def __init__(self, redis: RedisClient, keys: Keys, lifetime_seconds: int) -> None:
        self._redis = redis
        self._set = keys.revoked_sessions()
        self._channel = keys.revocations_channel()
        self._lifetime_ms = lifetime_seconds * 1000
        self._known: dict[str, int] = {}
        self._live = False
        self._followers: list[Callable[[str], None]] = []

    @property
    def channel(self) -> str:
        return self._channel

    def follow(self, on_revoked: Callable[[str], None]) -> None:
        """Call `on_revoked(session_id)` for each revocation heard on the channel."""
        self._followers.append(on_revoked)

    async def revoke(self, session_id: str) -> None:
        now = _now_ms()
        until = now + self._lifetime_ms
        async with redis_errors():
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(self._set, {session_id: until})
            pipe.zremrangebyscore(self._set, "-inf", now)
            await pipe.execute()
            # on its own: a cluster's pipelines take keyed commands only
            await self._redis.publish(self._channel, f"{session_id} {until}")
        self._known[session_id] = until

    async def is_revoked(self, session_id: str) -> bool:
        now = _now_ms()
        if self._live:
            return self._known.get(session_id, 0) > now
        async with redis_errors():
            until = await self._redis.zscore(self._set, session_id)
        return until is not None and until > now

    # ChannelListener
    def on_message(self, data: bytes) -> None:
        session_id, _, until = data.decode().partition(" ")
        if until.isdigit():
            self._known[session_id] = int(until)
            for on_revoked in self._followers:
                on_revoked(session_id)
        if len(self._known) % PRUNE_EVERY == 0:
            now = _now_ms()
            self._known = {sid: end for sid, end in self._known.items() if end > now}

    async def on_connected(self) -> None:
        now = _now_ms()
        async with redis_errors():
            rows: Any = await self._redis.zrangebyscore(self._set, now, "+inf", withscores=True)
        self._known = {as_text(sid): int(until) for sid, until in rows}
        self._live = True

    def on_disconnected(self) -> None:
        self._live = False
