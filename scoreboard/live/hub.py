"""The fan-out hub: board updates to this process's WebSocket and SSE clients.

It follows the process's one board subscription. Updates that change the top N are
coalesced (leading and trailing edge): a change on a quiet board goes out at once,
a burst becomes one message per interval carrying the latest top N, the last change
(`updated_user`) and every change in the window (`updated_users`). Each message is
serialised once per process. Every client holds only the newest message it has not
sent yet, so a slow client skips states instead of growing a backlog, and never
delays the others. A WebSocket client whose server offers shared frames (see
`scoreboard.http.ws_protocol`) is written to directly while it keeps up: a broadcast then
costs one socket write per client and wakes no task. Broadcasts are paced by their
audience: after one that took longer than the interval, the next waits as long.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property

import msgspec

from scoreboard.boards.feed import BoardEvent
from scoreboard.boards.leaderboard import Leaderboard, TopSnapshot, entry_reply, iso_ms
from scoreboard.core.contract import Change, LeaderboardUpdate, encode
from scoreboard.core.errors import BoardUnavailable
from scoreboard.core.tasks import cancel
from scoreboard.core.values import BoardEntry
from scoreboard.http.ws_protocol import FrameWriter, text_frame


class _WsMessage(msgspec.Struct):
    type: str
    data: LeaderboardUpdate


@dataclass
class Broadcast:
    """One message for every client, serialised on first use and then shared."""

    event_id: str
    data: LeaderboardUpdate

    @cached_property
    def ws_text(self) -> str:
        return encode(_WsMessage("leaderboard_update", self.data)).decode()

    @cached_property
    def ws_frame(self) -> bytes:
        return text_frame(self.ws_text.encode())

    @cached_property
    def sse_data(self) -> str:
        return encode(self.data).decode()


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


def _change(event: BoardEvent) -> Change:
    return Change(
        user_id=event.user_id,
        username=event.username,
        old_rank=event.old_rank,
        new_rank=event.new_rank or None,  # None: off the board (an admin's removal)
        score_change=event.delta,
        new_score=event.new_score,
    )


def board_data(
    entries: list[BoardEntry], total: int, changes: list[BoardEvent], ts_ms: int
) -> LeaderboardUpdate:
    return LeaderboardUpdate(
        leaderboard=[entry_reply(entry) for entry in entries],
        updated_user=_change(changes[-1]) if changes else None,
        updated_users=[_change(change) for change in changes],
        total_players=total,
        timestamp=iso_ms(ts_ms),
    )


class Hub:
    def __init__(self, leaderboard: Leaderboard, interval_ms: int, top_shown: int = 10):
        self._leaderboard = leaderboard
        self._interval = interval_ms / 1000
        self._top_shown = top_shown
        self._subscribers: set[Subscriber] = set()
        self._by_session: dict[str, set[Subscriber]] = {}
        self._window: list[BoardEvent] = []
        self._last_sent = 0.0
        self._gap = self._interval  # the interval, or longer while broadcasts take long
        self._flush_task: asyncio.Task[None] | None = None
        self.sent = 0  # broadcasts
        self.written_directly = 0  # messages written straight to a client's socket
        self.sse_streams: Counter[str] = Counter()  # open SSE streams per client address
        self.closing = False  # the process is shutting down: streams end

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def subscribe(self, session_id: str | None = None) -> tuple[Subscriber, Broadcast]:
        """A new client, and the current board to send it first."""
        subscriber = Subscriber(session_id)
        self._subscribers.add(subscriber)
        if session_id is not None:
            self._by_session.setdefault(session_id, set()).add(subscriber)
        return subscriber, self.snapshot_message(await self._leaderboard.top())

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)
        session = subscriber.session_id
        if session is not None and session in self._by_session:
            self._by_session[session].discard(subscriber)
            if not self._by_session[session]:
                del self._by_session[session]

    def going_away(self) -> None:
        """The process is shutting down: wake every client so its stream ends."""
        self.closing = True
        for subscriber in self._subscribers:
            subscriber.wake()

    def session_revoked(self, session_id: str) -> None:
        """Stop writing to the session's clients and wake them to close."""
        for subscriber in self._by_session.get(session_id, ()):
            subscriber.write_frame = None
            subscriber.wake()

    def snapshot_message(self, snapshot: TopSnapshot) -> Broadcast:
        entries = snapshot.entries[: self._top_shown]
        latest = max((e.updated_ms or 0 for e in entries), default=0) or int(time.time() * 1000)
        return Broadcast(
            f"seq-{snapshot.seq}", board_data(entries, snapshot.total_players, [], latest)
        )

    # FeedListener
    def wants(self, seq: int) -> bool:
        return bool(self._subscribers)

    def on_event(self, event: BoardEvent) -> None:
        if event.top is None:
            return  # the top N did not change: nothing for the feeds
        self._window.append(event)
        if time.monotonic() - self._last_sent >= self._gap and self._flush_task is None:
            self._flush()
        elif self._flush_task is None:
            self._flush_task = asyncio.get_running_loop().create_task(self._trailing_edge())

    async def on_connected(self) -> None:
        """After a (re)subscription the board may have moved unseen: push it (nothing
        while the board is missing: clients keep the last board until it is back)."""
        try:
            snapshot = await self._leaderboard.top()
        except BoardUnavailable:
            return
        message = self.snapshot_message(snapshot)
        for subscriber in self._subscribers:
            subscriber.offer(message)

    def on_disconnected(self) -> None:
        pass

    async def on_board_changed(self) -> None:
        """A rebuilt board replaces whatever clients were shown."""
        await self.on_connected()

    async def close(self) -> None:
        task, self._flush_task = self._flush_task, None
        await cancel(task)

    async def _trailing_edge(self) -> None:
        try:
            wait = self._gap - (time.monotonic() - self._last_sent)
            await asyncio.sleep(max(0.0, wait))
            self._flush()
        finally:
            self._flush_task = None

    def _flush(self) -> None:
        window, self._window = self._window, []
        if not window:
            return
        latest = max(window, key=lambda event: event.seq)
        assert latest.top is not None
        # a ban or unban (no change of score) moves the board but is nobody's update
        changes = [event for event in window if event.delta]
        data = board_data(
            latest.top[: self._top_shown], latest.total_players, changes, latest.ts_ms
        )
        message = Broadcast(latest.stream_id, data)
        started = time.monotonic()
        direct = 0
        for subscriber in self._subscribers:
            direct += subscriber.offer(message)
        self._last_sent = time.monotonic()
        self.written_directly += direct
        # Paced by the audience: the next broadcast waits at least as long as this one
        # took, so fan-out to many clients takes at most half the process's time and
        # requests keep being served; a burst then coalesces over a longer window.
        self._gap = max(self._interval, self._last_sent - started)
        self.sent += 1
