"""The Redis edge: client creation and the mapping of driver errors to ours."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scoreboard.core.errors import NOT_APPLIED, UNKNOWN, EmbeddedExtraMissing, RedisUnavailable
from scoreboard.storage.pipeline import never_sent

log = logging.getLogger("scoreboard.redis")

if TYPE_CHECKING:
    from scoreboard.core.settings import Settings

    RedisClient: TypeAlias = aioredis.Redis
else:
    RedisClient = Any

SOCKET_TIMEOUT_SECONDS = 0.6
# how often a cluster client's connections to replicas are looked for and closed
REPLICA_TIDY_SECONDS = 1.0
REPLICA_REFRESH_ROUNDS = 5  # the slot map is read again every five of them

# Reply errors that say Redis cannot serve right now, by their first word, and what to
# tell the client. Each is worth a retry: none means the request itself was wrong.
_TRANSIENT_REPLIES = {
    "LOADING": "Redis is loading its data",
    "READONLY": "Redis is a read-only replica (a failover is under way)",
    "OOM": "Redis is out of memory",
    "BUSY": "Redis is busy running a script",
    "MASTERDOWN": "Redis has lost its primary",
    "CLUSTERDOWN": "the Redis cluster is down",
    "TRYAGAIN": "Redis is moving data between nodes",
    "NOREPLICAS": "Redis has too few replicas",
    "UNBLOCKED": "the stream was deleted while it was being read",
    "NOGROUP": "the stream or its consumer group is gone",
}


def connect(
    url: str, *, max_connections: int = 64, timeout: float = SOCKET_TIMEOUT_SECONDS
) -> RedisClient:
    """A pooled client that fails fast instead of hanging when Redis stalls. When every
    connection is busy a request waits for one (up to the timeout) rather than failing.
    A client that blocks on reads (the syncer's XREADGROUP) needs a timeout longer than
    its blocking time."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )
    client: RedisClient = aioredis.Redis.from_pool(pool)
    return client


def connect_cluster(url: str, *, timeout: float = SOCKET_TIMEOUT_SECONDS) -> RedisClient:
    """A client of a Redis Cluster, `url` naming any node: commands go to the node
    that holds their key's slot (following MOVED and ASK), the slot map refreshed on
    a change. It fails fast like `connect`; a command is retried once on a
    connection error, and only idempotent ones reach this client without a key's
    protection (scripts are guarded by their tokens and event ids)."""
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    cluster = RedisCluster.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        max_connections=64,
    )
    # it answers the commands the service uses as the single-node client does
    return cast("RedisClient", cluster)


def serving_primaries(manager: Any) -> set[str]:
    """The names of the nodes a cluster client's slot map sends commands to: a master a
    failover demoted is left out as soon as the client knows of the failover, whether
    from a full refresh or from one command's redirection."""
    return {nodes[0].name for nodes in manager.slots_cache.values() if nodes}


async def release_replica_connections(client: RedisClient) -> None:
    """Closes a cluster client's idle pooled connections to nodes it no longer sends
    commands to (a master a failover demoted keeps its pool in the client's topology,
    and the service reads from primaries only). Connections in use close when they are
    released. Nothing for a client of one Redis."""
    manager = getattr(client, "nodes_manager", None)
    if manager is None or not manager.slots_cache:
        return
    serving = serving_primaries(manager)
    for node in list(manager.nodes_cache.values()):
        if node.name in serving:
            continue
        mark = getattr(node, "update_active_connections_for_reconnect", None)
        release = getattr(node, "disconnect_free_connections", None)
        if mark is None or release is None:  # an older redis-py: every connection
            await node.disconnect()
            continue
        mark()
        await release()


async def keep_replica_connections_closed(
    client: RedisClient, every: float = REPLICA_TIDY_SECONDS
) -> None:
    """`release_replica_connections` every `every` seconds, for as long as it runs, with
    the slot map read afresh every REPLICA_REFRESH_ROUNDS rounds: a redirection moves
    only its own slot in the client's map, so a master a failover demoted stays in it
    for the slots no command has touched since."""
    manager = getattr(client, "nodes_manager", None)
    if manager is None:
        return
    rounds = 0
    while True:
        await asyncio.sleep(every)
        rounds += 1
        try:
            if rounds % REPLICA_REFRESH_ROUNDS == 0:
                await manager.initialize()
            await release_replica_connections(client)
        except Exception as exc:  # the next round tries again
            log.debug("closing connections to replicas failed: %s", exc)


def connect_for(settings: Settings, *, timeout: float = SOCKET_TIMEOUT_SECONDS) -> RedisClient:
    """The client the settings ask for: one Redis, or a cluster."""
    assert settings.redis_url
    if settings.redis_cluster:
        return connect_cluster(settings.redis_url, timeout=timeout)
    return connect(settings.redis_url, timeout=timeout)


def connect_in_process() -> RedisClient:
    """An in-process Redis with Lua support, for the embedded default."""
    try:
        import fakeredis
    except ImportError:
        raise EmbeddedExtraMissing("fakeredis") from None

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
        if isinstance(exc, RedisError):
            reason = transient_reply(exc)
            if reason is not None:  # refused before running: nothing changed
                raise RedisUnavailable(
                    reason, details={"redis": reason}, outcome=NOT_APPLIED
                ) from exc
            if _not_permitted(exc):  # a script stops at the command: what it did stays
                log.error("Redis refused a command to its user (check its ACL): %s", exc)
                raise RedisUnavailable(
                    _NOT_PERMITTED, details={"redis": _NOT_PERMITTED}, outcome=UNKNOWN
                ) from exc
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError)):
            outcome = NOT_APPLIED if _not_sent(exc) else UNKNOWN
            raise RedisUnavailable(outcome=outcome) from exc


_NOT_PERMITTED = "Redis refused a command to the service's user: its ACL lacks a permission"


def _not_permitted(exc: RedisError) -> bool:
    """NOPERM (redis-py's class of its own, or a pipelined connection's reply), or a
    script's command its user may not run (Redis answers that with ERR)."""
    if isinstance(exc, NoPermissionError):
        return True
    text = str(exc)
    return isinstance(exc, ResponseError) and (
        text.startswith("NOPERM") or "user executing the script can't run" in text
    )


# How redis-py's own connections say a command was never written: no connection
# could be made, or none was free in the pool in time.
_REDIS_PY_NOT_SENT = ("connecting to", "No connection available", "Timeout connecting")


def _not_sent(exc: BaseException) -> bool:
    """A connection error that came before the command left this process. Anything
    else (a timeout waiting for the reply, a connection cut) may have reached Redis."""
    if isinstance(exc, ConnectionRefusedError) or never_sent(exc):
        return True
    text = str(exc)
    return isinstance(exc, RedisError) and any(part in text for part in _REDIS_PY_NOT_SENT)


# redis-py turns some reply errors into classes of their own (and drops the first word
# from the message); the pipelined connection raises them as plain ResponseError.
_TRANSIENT_CLASSES: tuple[tuple[type[RedisError], str], ...] = (
    (BusyLoadingError, "LOADING"),
    (OutOfMemoryError, "OOM"),
    (ReadOnlyError, "READONLY"),
    (ClusterDownError, "CLUSTERDOWN"),
    (TryAgainError, "TRYAGAIN"),
)


def transient_reply(exc: RedisError) -> str | None:
    """What a reply error that means 'not now' says, or None for any other error."""
    for cls, code in _TRANSIENT_CLASSES:
        if isinstance(exc, cls):
            return _TRANSIENT_REPLIES[code]
    if isinstance(exc, ResponseError):
        return _TRANSIENT_REPLIES.get(str(exc).split(" ", 1)[0])
    return None


_REDIS_ERRORS = _RedisErrors()


def redis_errors() -> _RedisErrors:
    """Turn an unreachable or stalled Redis into SERVICE_UNAVAILABLE."""
    return _REDIS_ERRORS


def stream_position(text: str) -> tuple[int, int]:
    """A stream id ('<ms>-<seq>') as a pair that compares in stream order."""
    ms, _, seq = text.partition("-")
    return int(ms or 0), int(seq or 0)


async def consumer_lag(redis: RedisClient, stream: str, group: dict[Any, Any]) -> int:
    """Entries of `stream` not yet delivered to the consumer `group` (its XINFO GROUPS
    record). Redis 7.0's own `lag` can be wrong or missing after an AOF reload or a
    trim, so it is trusted only when it fits: nothing is lagging once the group has
    been delivered the stream's last entry, and never more than the stream holds."""
    if not group:
        return int(await redis.xlen(stream))
    info = await redis.xinfo_stream(stream)
    delivered = stream_position(as_text(group.get("last-delivered-id", "0-0")))
    if delivered >= stream_position(as_text(info.get("last-generated-id", "0-0"))):
        return 0
    length = int(info.get("length", 0))
    reported = group.get("lag")
    return length if reported is None else min(int(reported), length)
