"""The hot path on a Redis Cluster: one auto-pipelining connection per primary, each
script call routed by the slot of its first key (every key of a board shares it).

The slot map is the cluster client's (`nodes_manager`); the commands of one event-loop
turn for one node leave in one write, as on a single Redis. Replies that say the slot
is elsewhere or not served right now (`MOVED`, `TRYAGAIN`, `CLUSTERDOWN`) refresh the
map and the call is sent again; `ASK` (a slot being migrated) goes through the cluster
client, which sends `ASKING` first; `NOSCRIPT` (a promoted replica has no scripts)
loads the script on that node. A call in flight when its connection dies is
ambiguous: only scripts that are safe to run twice are sent again (a score update is:
its spent token answers the same request with the first answer).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scoreboard.storage.pipeline import PipelinedConnection, never_sent
from scoreboard.storage.redis_client import release_replica_connections, serving_primaries

log = logging.getLogger("scoreboard.cluster")

ATTEMPTS = 6
RETRY_SECONDS = 0.25
_REROUTE = ("MOVED", "TRYAGAIN", "CLUSTERDOWN")


class ClusterPipelines:
    def __init__(self, cluster: Any, timeout: float) -> None:
        self._cluster = cluster
        self._timeout = timeout
        self._connections: dict[str, PipelinedConnection] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    def _url(self, host: str, port: int) -> str:
        kwargs = self._cluster.nodes_manager.connection_kwargs
        user, password = kwargs.get("username"), kwargs.get("password")
        login = f"{user or ''}:{password}@" if password else ""
        return f"redis://{login}{host}:{port}/0"

    async def _connection(self, slot: int) -> PipelinedConnection:
        manager = self._cluster.nodes_manager
        if not manager.slots_cache:
            await self._cluster.initialize()
        node = manager.get_node_from_slot(slot)
        connection = self._connections.get(node.name)
        if connection is None:  # a node new to this map: the others may have moved
            connection = PipelinedConnection(self._url(node.host, node.port), self._timeout)
            self._connections[node.name] = connection
            self._retire_replicas()
        return connection

    async def _refresh(self) -> None:
        """Read the slot map again (once, however many calls ask at the same time)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(
                self._cluster.nodes_manager.initialize()
            )
        try:
            await asyncio.shield(self._refreshing)
        except Exception as exc:  # the next attempt finds out, or the last one says so
            log.debug("refreshing the cluster's slot map failed: %s", exc)
        self._retire_replicas()
        await release_replica_connections(self._cluster)

    def _retire_replicas(self) -> None:
        """Let go of the connections to nodes the slot map no longer sends commands to
        (a master a failover demoted): each closes once its answers are in."""
        serving = serving_primaries(self._cluster.nodes_manager)
        for name, connection in list(self._connections.items()):
            if name not in serving:
                del self._connections[name]
                retiring = asyncio.get_running_loop().create_task(connection.retire())
                self._retiring.add(retiring)
                retiring.add_done_callback(self._retiring.discard)

    async def script(
        self,
        sha: str,
        source: Any,
        keys: list[str],
        args: list[Any],
        *,
        idempotent: bool,
        wait: tuple[int, int] | None = None,
    ) -> Any:
        """EVALSHA on the primary of the first key's slot; with `wait` (replicas,
        timeout ms), WAIT on the same connection after it, returning the replicas that
        acknowledged as the second value."""
        slot = key_slot(keys[0].encode())
        last: Exception | None = None
        for attempt in range(ATTEMPTS):
            connection = await self._connection(slot)
            try:
                try:
                    reply = await connection.execute("EVALSHA", sha, len(keys), *keys, *args)
                except NoScriptError:
                    await connection.execute("SCRIPT", "LOAD", source)
                    reply = await connection.execute("EVALSHA", sha, len(keys), *keys, *args)
                if wait is None:
                    return reply, None
                return reply, int(await connection.execute("WAIT", *wait))
            except ResponseError as exc:
                word = str(exc).split(" ", 1)[0]
                if word == "ASK":
                    reply = await self._cluster.evalsha(sha, len(keys), *keys, *args)
                    return reply, None
                if word not in _REROUTE:
                    raise
                last = exc
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self._drop(connection)
                if not idempotent and not never_sent(exc):
                    raise  # it may have run: the caller's answer says unavailable
                last = exc
            await self._refresh()
            if attempt:
                await asyncio.sleep(RETRY_SECONDS)
        assert last is not None
        raise last

    def _drop(self, connection: PipelinedConnection) -> None:
        """Forget a connection that failed (its node may be gone for good)."""
        for name, held in list(self._connections.items()):
            if held is connection:
                del self._connections[name]
                asyncio.get_running_loop().create_task(connection.close())

    async def close(self) -> None:
        for connection in self._connections.values():
            await connection.close()
        self._connections.clear()
        await asyncio.gather(*self._retiring, return_exceptions=True)
