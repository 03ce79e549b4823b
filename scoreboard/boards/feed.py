"""The one pub/sub subscription of a process to a board's update channel.

Listeners get every event in publish order. Pub/sub loses what is published while the
connection is down, so after every (re)subscription listeners are told to resync, and
while it is down they are told so (the leaderboard then reads Redis directly). A
rebuild of the board announces itself on the same channel ('rebuilt <epoch> <seq>'),
and listeners resync then too, as they do when `resync()` is called by a process that
noticed the board change without hearing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, Protocol

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError

from scoreboard.storage.keys import DEFAULT_BOARD, Keys
from scoreboard.storage.pipeline import Subscription
from scoreboard.storage.redis_client import SOCKET_TIMEOUT_SECONDS, RedisClient
from scoreboard.storage.scripts import BoardEntry, entries_from_flat

log = logging.getLogger("scoreboard.feed")

POLL_SECONDS = 1.0
PING_SECONDS = 15.0
MAX_BACKOFF_SECONDS = 5.0


class BoardEvent(msgspec.Struct, frozen=True):
    seq: int
    stream_id: str
    user_id: str
    username: str
    delta: int
    old_rank: int | None
    new_rank: int
    new_score: int
    ts_ms: int
    total_players: int
    top: list[BoardEntry] | None
    epoch: str

    @classmethod
    def from_message(cls, data: bytes | str) -> BoardEvent:
        """From a published '<sequence> <JSON>' message."""
        raw = data.encode() if isinstance(data, str) else data
        body = msgspec.json.decode(raw.partition(b" ")[2])  # errors are ValueErrors too
        top = body.get("top")  # an empty top (Lua's empty table) arrives as {}
        entries = None if top is None else [f for entry in top or [] for f in entry]
        return cls(
            seq=int(body["seq"]),
            stream_id=body["id"],
            user_id=body["user_id"],
            username=body["username"],
            delta=int(body["delta"]),
            old_rank=int(body["old_rank"]) or None,
            new_rank=int(body["new_rank"]),
            new_score=int(body["new_score"]),
            ts_ms=int(body["ts"]),
            total_players=int(body["total"]),
            top=None if entries is None else entries_from_flat(entries, 1),
            epoch=body["epoch"],
        )


class FeedListener(Protocol):
    """Follows the board's update events."""

    def wants(self, seq: int) -> bool:
        """Whether the event with this sequence could change anything for it."""
        ...

    def on_event(self, event: BoardEvent) -> None: ...

    async def on_connected(self) -> None:
        """After a (re)subscription: the board may have moved unseen."""
        ...

    def on_disconnected(self) -> None: ...

    async def on_board_changed(self) -> None:
        """The board was rebuilt or lost: drop what is held and read it afresh."""
        ...


class ChannelListener(Protocol):
    """Follows another channel over the same subscription (raw messages)."""

    def on_message(self, data: bytes) -> None: ...

    async def on_connected(self) -> None: ...

    def on_disconnected(self) -> None: ...


class BoardFeed:
    """The board's channel is sharded pub/sub (the scripts `SPUBLISH` it in the board's
    slot); other channels (revocations) are classic. With `url` (a plain redis://
    address) the subscription is a lean connection of its own (`Subscription`); with
    `cluster`, the cluster client's pub/sub on the node of the board's slot (and the
    classic channels on a connection of their own); else the general client's pub/sub
    (in-process Redis, TLS, sockets). A sharded subscription that Redis ends unasked
    (its slot moved: a failover) counts as a lost connection: the feed refreshes the
    cluster's topology, subscribes again and has its listeners resync."""

    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        board: str = DEFAULT_BOARD,
        url: str | None = None,
        *,
        cluster: bool = False,
    ) -> None:
        self._redis = redis
        self._url = url
        self._cluster = cluster
        self._channel = keys.updates_channel(board)
        self._listeners: list[FeedListener] = []
        self._channels: dict[str, ChannelListener] = {}
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self.connected = False

    def add_listener(self, listener: FeedListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: FeedListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    def add_channel(self, channel: str, listener: ChannelListener) -> None:
        """Follow `channel` too, on the same connection."""
        self._channels[channel] = listener

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="board-feed")

    async def stop(self) -> None:
        """Cancel the follower; repeated because the client can swallow a cancellation
        that lands while it waits for a message."""
        if self._resync_task is not None:
            self._resync_task.cancel()
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                task.result()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    backoff = 0.1
                log.warning("board feed lost (%s); resubscribing in %.1fs", exc, backoff)
            self._set_disconnected()
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311
            backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)

    async def _follow(self) -> None:
        if self._url is not None:
            await self._follow_lean(self._url)
            return
        if self._cluster:
            await self._follow_cluster()
            return
        async with self._redis.pubsub() as pubsub:
            if self._channels:
                await pubsub.subscribe(*self._channels)
            await pubsub.ssubscribe(self._channel)
            await self._set_connected()
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=False, timeout=POLL_SECONDS
                )
                if message:
                    self._take(message)

    def _take(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("message", "smessage"):
            self._route(message["channel"], message["data"])
        elif kind == "sunsubscribe":
            raise RedisConnectionError("the board's subscription was ended by Redis")

    async def _follow_cluster(self) -> None:
        """The board's channel on its slot's node, the classic ones on a connection of
        their own; either ending ends both."""
        nodes = getattr(self._redis, "nodes_manager", None)
        if nodes is not None:
            await nodes.initialize()  # a failover may have moved the board's slot
        sharded: Any = self._redis.pubsub()
        classic: Any = self._redis.pubsub() if self._channels else None
        try:
            await sharded.ssubscribe(self._channel)
            if classic is not None:
                await classic.subscribe(*self._channels)
            await self._set_connected()
            readers = [asyncio.create_task(self._read_sharded(sharded))]
            if classic is not None:
                readers.append(asyncio.create_task(self._read_classic(classic)))
            try:
                done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    task.result()
            finally:
                for task in readers:
                    task.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
        finally:
            for pubsub in (sharded, classic):
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()

    async def _read_sharded(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_sharded_message(
                ignore_subscribe_messages=False, timeout=POLL_SECONDS
            )
            if message:
                self._take(message)

    async def _read_classic(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_SECONDS)
            if message:
                self._take(message)

    async def _follow_lean(self, url: str) -> None:
        subscription = Subscription(url, SOCKET_TIMEOUT_SECONDS)
        try:
            await subscription.open(list(self._channels), sharded=(self._channel,))
            await self._set_connected()  # messages meanwhile are held, then delivered
            subscription.deliver(self._route)
            await subscription.watch(PING_SECONDS)
        finally:
            await subscription.close()

    async def _set_connected(self) -> None:
        followers: list[FeedListener | ChannelListener] = [
            *self._listeners,
            *self._channels.values(),
        ]
        for follower in followers:
            await follower.on_connected()
        self.connected = True

    def _route(self, channel: bytes | str, data: bytes) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        other = self._channels.get(name)
        if other is not None:
            other.on_message(data)
        else:
            self._dispatch(data)

    def resync(self) -> None:
        """Have every board listener read the board afresh (once, however often asked
        while it runs)."""
        if self._resync_task is None or self._resync_task.done():
            self._resync_task = asyncio.get_running_loop().create_task(self._resync())

    async def _resync(self) -> None:
        for listener in self._listeners:
            try:
                await listener.on_board_changed()
            except Exception as exc:
                log.warning("resync after a board change failed: %s", exc)

    def _dispatch(self, data: bytes) -> None:
        """Parse an event only when a listener wants it: a writer's own events, for
        instance, arrive after it has applied them."""
        if data.startswith(b"rebuilt "):
            log.info("the board was rebuilt (%s); reading it afresh", data.decode())
            self.resync()
            return
        try:
            seq = int(data.partition(b" ")[0])
            interested = [listener for listener in self._listeners if listener.wants(seq)]
            if not interested:
                return
            event = BoardEvent.from_message(data)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed board event")
            return
        for listener in interested:
            listener.on_event(event)

    def _set_disconnected(self) -> None:
        """Every follower hears it, including any whose `on_connected` ran before a
        later one failed."""
        self.connected = False
        followers: list[FeedListener | ChannelListener] = [
            *self._listeners,
            *self._channels.values(),
        ]
        for follower in followers:
            follower.on_disconnected()
