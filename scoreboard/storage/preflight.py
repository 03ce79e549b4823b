"""What the service checks about its Redis and PostgreSQL before it starts.

A command that cannot reach or log in to a store, or is given a Redis that would lose
data (an eviction policy other than `noeviction`) or cannot run the scripts (older
than 7.0), stops with one line naming the store's URL without its password. A Redis
without AOF is allowed, with a warning in the log and in `/health/detailed`.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from scoreboard.core.errors import ScoreboardError
from scoreboard.core.settings import Settings
from scoreboard.storage.pipeline import PipelinedConnection, supports
from scoreboard.storage.redis_client import RedisClient

log = logging.getLogger("scoreboard.preflight")

MIN_REDIS = (7, 0)
CONNECT_SECONDS = 3.0


class StartupError(ScoreboardError):
    """A store the command needs is unreachable or unfit; the process must not start."""


def redacted(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


async def redis_warnings(
    client: RedisClient, settings: Settings, *, quiet: bool = False
) -> list[str]:
    """Raises StartupError for a Redis the service must not run on; returns warnings
    (and logs them, unless `quiet`: the command's own check said them already)."""
    say = log.debug if quiet else log.warning
    url = redacted(settings.redis_url or "")
    try:
        info = await client.info()
    except ResponseError as exc:  # INFO denied, or a Redis stand-in without it
        message = f"could not check the configuration of Redis at {url}: {exc}"
        say(message)
        return [message]
    version = str(info.get("redis_version", "0"))
    if _version(version) < MIN_REDIS:
        raise StartupError(f"Redis {version} at {url} is older than 7.0, which the scripts need")
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        message = (
            f"Redis at {url} has maxmemory-policy {policy}: it would evict boards and"
            " action tokens; set it to noeviction"
        )
        if not settings.allow_eviction:
            raise StartupError(f"{message} (or SCOREBOARD_ALLOW_EVICTION=true to experiment)")
        say("%s; running anyway (SCOREBOARD_ALLOW_EVICTION)", message)
        return [message]
    if not int(info.get("aof_enabled", 0)):
        message = (
            f"Redis at {url} runs without AOF: updates accepted since the syncer's last"
            " commit are lost if Redis restarts"
        )
        say(message)
        return [message]
    return []


async def check_redis(settings: Settings) -> list[str]:
    assert settings.redis_url
    url = redacted(settings.redis_url)
    client: RedisClient = aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=CONNECT_SECONDS, socket_connect_timeout=CONNECT_SECONDS
    )
    try:
        await client.ping()
        warnings = await redis_warnings(client, settings)
    except AuthenticationError as exc:
        raise StartupError(f"Redis at {url} refused the login: {exc}") from None
    except RedisError as exc:
        raise StartupError(f"cannot reach Redis at {url}: {exc}") from None
    finally:
        await client.aclose()
    if supports(settings.redis_url):  # the service's own connection, where it uses one
        await _service_login(settings.redis_url, url)
    return warnings


async def _service_login(redis_url: str, url: str) -> None:
    """The login as the service's own connection makes it: redis-py lets a password
    pass that a Redis without one refuses, which the service does not."""
    connection = PipelinedConnection(redis_url, CONNECT_SECONDS)
    try:
        await connection.execute("PING")
    except RedisError as exc:
        raise StartupError(f"Redis at {url} refused the login: {exc}") from None
    finally:
        await connection.close()


async def check_postgres(settings: Settings) -> None:
    assert settings.database_url
    url = redacted(settings.database_url)
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=CONNECT_SECONDS)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = str(exc) or type(exc).__name__
        raise StartupError(f"cannot reach PostgreSQL at {url}: {reason}") from None
    await conn.close()


async def preflight(settings: Settings) -> list[str]:
    """Every check a command on real services runs first; returns the warnings."""
    if settings.embedded:
        return []
    warnings = await check_redis(settings)
    await check_postgres(settings)
    return warnings
