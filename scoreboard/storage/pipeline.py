"""An auto-pipelining Redis connection for the hot path (every Lua script call).

Redis answers the commands of one connection in order, so commands are written as they
are issued (those of one turn of the event loop together, in one write) and each reply
is matched to its command by position: concurrent requests share round trips and system
calls instead of each taking a pooled connection and waiting for its own.
hiredis packs commands and parses replies. A watchdog fails every waiting command when
the oldest has waited past the timeout, and the next command reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

WATCHDOG_SECONDS = 0.25
_NOT_SENT = "cannot reach Redis"  # how a connection error that sent nothing begins


def never_sent(exc: BaseException) -> bool:
    """Whether a connection error came before anything was written to Redis (so the
    command cannot have run)."""
    return str(exc).startswith(_NOT_SENT)


def supports(url: str) -> bool:
    """Plain TCP URLs only; TLS and unix sockets stay with the general client."""
    return urlsplit(url).scheme == "redis"


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.lost = self.loop.create_future()
        self.outgoing: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Queue a command; everything queued in one turn of the loop leaves in one
        write (one system call for all the requests that turn handled)."""
        if not self.outgoing:
            self.loop.call_soon(self.flush)
        self.outgoing.append(data)

    def flush(self) -> None:
        data, self.outgoing = self.outgoing, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(data))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def fail(self, error: Exception) -> None:
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


class PipelinedConnection:
    protocol_class: type[_Protocol] = _Protocol

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._password = unquote(parts.password) if parts.password else None
        self._username = unquote(parts.username) if parts.username else None
        self._db = int(parts.path.lstrip("/") or 0)
        self._timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()
        self._watchdog: asyncio.Task[None] | None = None
        self._retired = False

    async def execute(self, *args: Any) -> Any:
        if self._retired:
            raise RedisConnectionError(f"{_NOT_SENT}: the connection to this node is retired")
        protocol = self._protocol
        if protocol is None or protocol.lost.done() or protocol.closing():
            protocol = await self._connect()
        reply = await self._send(protocol, args)
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            if message.startswith("NOSCRIPT"):
                raise NoScriptError(message)
            raise ResponseError(message)
        return reply

    def _send(self, protocol: _Protocol, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.waiting.append((future, time.monotonic()))
        protocol.write(hiredis.pack_command(args))
        return future

    async def _connect(self) -> _Protocol:
        async with self._connecting:
            current = self._protocol
            if current is not None and not current.lost.done() and not current.closing():
                return current
            loop = asyncio.get_running_loop()
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(self.protocol_class, self._host, self._port),
                    self._timeout,
                )
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(f"{_NOT_SENT}: {exc}") from exc
            await self._handshake(protocol)
            self._protocol = protocol
            if self._watchdog is None or self._watchdog.done():
                self._watchdog = asyncio.create_task(self._watch(), name="redis-watchdog")
            return protocol

    async def _handshake(self, protocol: _Protocol) -> None:
        commands: list[tuple[Any, ...]] = []
        if self._password is not None:
            auth = (
                ("AUTH", self._username, self._password)
                if self._username
                else ("AUTH", self._password)
            )
            commands.append(auth)
        if self._db:
            commands.append(("SELECT", self._db))
        for command in commands:
            reply = await asyncio.wait_for(self._send(protocol, command), self._timeout)
            if isinstance(reply, hiredis.ReplyError):
                raise RedisConnectionError(f"Redis refused {command[0]}: {reply}")

    async def _watch(self) -> None:
        """Fail everything waiting once the oldest command has waited too long."""
        while True:
            await asyncio.sleep(WATCHDOG_SECONDS)
            protocol = self._protocol
            if protocol is None or not protocol.waiting:
                continue
            if time.monotonic() - protocol.waiting[0][1] > self._timeout:
                protocol.fail(RedisTimeoutError("Redis did not answer in time"))
                if protocol.transport is not None:
                    protocol.transport.abort()

    async def retire(self) -> None:
        """Takes no new command, and closes once the commands sent have their answers
        (or the watchdog has failed them)."""
        self._retired = True
        protocol = self._protocol
        sent = [future for future, _ in protocol.waiting] if protocol is not None else []
        if sent:
            await asyncio.wait(sent, timeout=self._timeout + WATCHDOG_SECONDS)
        await self.close()

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()


Deliver = Callable[[bytes, bytes], None]


_MESSAGES = (b"message", b"smessage")


class _SubscriberProtocol(_Protocol):
    """Hands each published message (classic or sharded) to `deliver` as it is parsed
    (held until delivery starts); every other reply answers a command, in order, as on
    any connection. A sharded subscription the server ends unasked (its slot moved to
    another node) ends the subscription: its owner subscribes again."""

    def __init__(self) -> None:
        super().__init__()
        self.deliver: Deliver | None = None
        self.held: list[tuple[bytes, bytes]] = []
        self.subscribed = False

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if type(reply) is list and len(reply) == 3 and reply[0] in _MESSAGES:
                if self.deliver is None:
                    self.held.append((reply[1], reply[2]))
                else:
                    self.deliver(reply[1], reply[2])
                continue
            if type(reply) is list and reply and reply[0] == b"sunsubscribe" and self.subscribed:
                self.fail(RedisConnectionError("the sharded subscription was ended by Redis"))
                if self.transport is not None:
                    self.transport.close()
                continue
            if not self.waiting:
                continue  # nothing asked for it (a confirmation of a subscription ended)
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_result(reply)


class Subscription(PipelinedConnection):
    """A pub/sub subscription on a connection of its own, without the general client's
    per-message machinery: messages are parsed by hiredis and handed to a callback in
    the same turn of the loop. It never reconnects by itself (a new connection would
    hold no subscriptions): `watch` raises once the connection is lost or stops
    answering, and the owner subscribes again."""

    protocol_class = _SubscriberProtocol

    async def open(self, channels: list[str], sharded: tuple[str, ...] = ()) -> None:
        """Subscribe to `channels` (classic pub/sub) and `sharded` (SSUBSCRIBE: a
        board's channel, published in its slot)."""
        protocol = await self._connect()
        for command, names in (("SUBSCRIBE", channels), ("SSUBSCRIBE", sharded)):
            for channel in names:
                reply = await self._send(protocol, (command, channel))
                if isinstance(reply, hiredis.ReplyError):
                    raise ResponseError(str(reply))
        assert isinstance(protocol, _SubscriberProtocol)
        protocol.subscribed = True

    def deliver(self, callback: Deliver) -> None:
        """Start handing messages to `callback`, those received so far first."""
        protocol = self._subscriber()
        held, protocol.held = protocol.held, []
        for channel, data in held:
            callback(channel, data)
        protocol.deliver = callback

    async def watch(self, ping_every: float) -> None:
        """Return never: raise when the connection is lost, or when a PING sent after
        `ping_every` quiet seconds goes unanswered past the timeout (the watchdog)."""
        protocol = self._subscriber()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.lost), ping_every)
            if protocol.lost.done() or protocol.closing():
                raise RedisConnectionError("the subscription's connection was lost")
            await self._send(protocol, ("PING",))

    def _subscriber(self) -> _SubscriberProtocol:
        if not isinstance(self._protocol, _SubscriberProtocol):
            raise RedisConnectionError("not subscribed")
        return self._protocol
