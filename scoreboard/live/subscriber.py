"""A live-feed client's mailbox: the newest message it has not been sent yet."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from scoreboard.http.ws_protocol import FrameWriter
from scoreboard.live.messages import Broadcast


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(eq=False)
class Subscriber:
    """A client's mailbox: the newest broadcast it has not been sent yet.

    A waiting client holds a bare future and a timer, nothing more: a broadcast to
    thousands of clients wakes each one once and creates no task per client (waiting
    through `asyncio.wait_for` did, and that dominated a broadcast's cost).

    With `write_frame` set, a message goes straight to the client's socket unless an
    earlier one is still waiting or being sent (order is kept) or the socket is backed
    up; only then does it wait here for the client's own task."""

    session_id: str | None = None
    write_frame: FrameWriter | None = None
    pending: Broadcast | None = None
    skipped: int = 0
    _sending: bool = False
    _waiter: asyncio.Future[None] | None = field(default=None, repr=False)

    def offer(self, message: Broadcast) -> bool:
        """Hand over a message; True when it went straight to the client's socket."""
        if (
            self.write_frame is not None
            and self.pending is None
            and not self._sending
            and self.write_frame(message.ws_frame)
        ):
            return True
        if self.pending is not None:
            self.skipped += 1
        self.pending = message
        self.wake()
        return False

    def wake(self) -> None:
        """Wake the client's task, message or not (it then rechecks its session)."""
        if self._waiter is not None:
            _wake(self._waiter)

    async def deliver(self, send: Callable[[Broadcast], Awaitable[None]], within: float) -> None:
        """Send the next waiting message with `send`, or return after `within` seconds."""
        message = await self.next(within)
        if message is None:
            return
        self._sending = True
        try:
            await send(message)
        finally:
            self._sending = False

    async def next(self, within: float) -> Broadcast | None:
        """The next message, or None when `within` seconds pass without one."""
        if self.pending is None:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            timer = loop.call_later(within, _wake, waiter)
            self._waiter = waiter
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        message, self.pending = self.pending, None
        return message
