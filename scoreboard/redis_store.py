"""The Redis edge: client creation and the mapping of driver errors to ours."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scoreboard.errors import ServiceUnavailable

if TYPE_CHECKING:
    RedisClient: TypeAlias = aioredis.Redis
else:
    RedisClient = Any

SOCKET_TIMEOUT_SECONDS = 2.0


def connect(url: str, *, max_connections: int = 64) -> RedisClient:
    """A pooled client that fails fast instead of hanging when Redis stalls. When every
    connection is busy a request waits for one (up to the socket timeout) rather than
    failing."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=SOCKET_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
    )
    client: RedisClient = aioredis.Redis.from_pool(pool)
    return client


def connect_in_process() -> RedisClient:
    """An in-process Redis with Lua support, for the embedded default."""
    import fakeredis

    client: RedisClient = fakeredis.FakeAsyncRedis()
    return client


def as_text(value: Any) -> str:
    """A reply value as text (replies come as bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


class _RedisErrors:
    """A plain class rather than a generator context manager: it wraps every Redis
    call on the request path, where a generator's setup is measurable."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
            raise ServiceUnavailable("Redis is unavailable") from exc


_REDIS_ERRORS = _RedisErrors()


def redis_errors() -> _RedisErrors:
    """Turn an unreachable or stalled Redis into SERVICE_UNAVAILABLE."""
    return _REDIS_ERRORS
