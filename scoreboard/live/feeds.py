"""Live feeds: every ranking of every board (its all-time one, each current period) that
this process's WebSocket and SSE clients follow, through one mechanism.

A ranking's feed runs while someone here follows it, as a listener of its board's
update channel (see `channels`), and is driven by that channel's events, never by a
timer: an update, a ban, an unban, an adjustment or a season reset, a rebuild, a
(re)subscription to the channel, or the end of the period it shows (its followers then
get the new, empty period). An all-time ranking takes its top from the event itself
when the update moved it (the scripts publish the board's top N with such an event) and
ignores updates below it; a period ranking is read (one read script) when its board
moved. Changes are coalesced, leading and trailing edge: a change on a quiet ranking
goes out at once, a burst becomes one message per broadcast interval carrying the latest
top, the last change (`updated_user`) and every change in the window (`updated_users`;
all-time rankings only, as an update's ranks are all-time ones). Broadcasts are paced by
their audience: after one that took longer than the interval, the next waits as long.

Each message is serialised once per process and shared. Every client holds only the
newest message it has not been sent yet (a `Subscriber`), so a slow client skips states
instead of growing a backlog and never delays the others; a WebSocket client whose
server offers shared frames is written to directly while it keeps up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from scoreboard.boards.feed import BoardEvent
from scoreboard.boards.runtime import BoardRuntimes
from scoreboard.core.errors import RateLimitExceeded, ScoreboardError
from scoreboard.core.periods import ALL_TIME, Period, iso_utc
from scoreboard.core.tasks import cancel
from scoreboard.core.values import BoardEntry
from scoreboard.live.channels import BoardChannels
from scoreboard.live.messages import Broadcast, board_data
from scoreboard.live.subscriber import Subscriber

log = logging.getLogger("scoreboard.feeds")

TOP_SHOWN = 10
PERIOD_END_MARGIN_SECONDS = 0.05  # read a little after the end, when the new one holds


@dataclass
class LiveStats:
    """This process's broadcasts, by board (counters of `/metrics`)."""

    sent: Counter[str] = field(default_factory=Counter)
    written_directly: Counter[str] = field(default_factory=Counter)


class RankingFeed:
    """One ranking followed in this process; a listener of its board's channel."""

    def __init__(
        self, boards: BoardRuntimes, board: str, kind: str, interval: float, stats: LiveStats
    ) -> None:
        self.boards = boards
        self.board = board
        self.kind = kind
        self.subscribers: set[Subscriber] = set()
        self.last: Broadcast | None = None
        self.reads = 0  # reads of the ranking (tests count them)
        self._all_time = kind == ALL_TIME
        self._interval = interval
        self._gap = interval  # the interval, or longer while broadcasts take long
        self._stats = stats
        self._window: list[BoardEvent] = []
        self._dirty = False  # something may have moved the ranking since the last look
        self._reread = True  # the next look reads the ranking (no event holds its state)
        self._shown: Any = None
        self._last_sent = 0.0
        self._task: asyncio.Task[None] | None = None
        self._period_end: asyncio.TimerHandle | None = None

    async def current(self) -> Broadcast:
        """What a new follower is sent first."""
        if self.last is not None and not (self._dirty or self._reread):
            return self.last
        dirty = self._dirty
        period, message = await self._read([])
        if not dirty and not self._dirty:  # nothing moved meanwhile: it is the state
            self._adopt(period, message)
            self._reread = False
        return message

    async def _read(self, changes: list[BoardEvent]) -> tuple[Period | None, Broadcast]:
        config, runtime = await self.boards.board(self.board)
        period = self.boards.period(config, self.kind)
        self.reads += 1
        page = await self.boards.page(runtime, period, 0, TOP_SHOWN)
        latest = max((e.updated_ms or 0 for e in page.entries), default=0)
        ts_ms = changes[-1].ts_ms if changes else latest or int(time.time() * 1000)
        event_id = f"{self.board}-{self.kind}-{page.sequence}"
        message = self._message(event_id, page.entries, page.total_players, changes, ts_ms, period)
        return period, message

    def _message(
        self,
        event_id: str,
        entries: list[BoardEntry],
        total: int,
        changes: list[BoardEvent],
        ts_ms: int,
        period: Period | None,
    ) -> Broadcast:
        data = board_data(entries[:TOP_SHOWN], total, changes, ts_ms)
        data.board, data.period = self.board, self.kind
        data.period_id = None if period is None else period.id
        data.next_reset_at = None if period is None else iso_utc(period.ends_ms)
        return Broadcast(event_id, data)

    def _adopt(self, period: Period | None, message: Broadcast) -> bool:
        """Take `message` as the ranking's state; False when it shows nothing new."""
        data = message.data
        entries = [(e.user_id, e.score, e.username) for e in data.leaderboard]
        shown = (None if period is None else period.id), data.total_players, entries
        if self.last is not None and shown == self._shown and not data.updated_users:
            return False
        self._shown, self.last = shown, message
        self._expire_with(period)
        return True

    def _expire_with(self, period: Period | None) -> None:
        """Look again when the shown period ends."""
        if self._period_end is not None:
            self._period_end.cancel()
            self._period_end = None
        if period is None:
            return
        left = max(0.0, (period.ends_ms - self.boards.now_ms()) / 1000)
        self._period_end = asyncio.get_running_loop().call_later(
            left + PERIOD_END_MARGIN_SECONDS, self._period_ended
        )

    def _period_ended(self) -> None:
        self._period_end = None
        self._reread = True
        self._due()

    # FeedListener
    def wants(self, seq: int) -> bool:
        if self._all_time:
            return bool(self.subscribers)
        self._reread = True  # any event of the board may move a period ranking:
        self._due()  # the signal is all it needs (the ranking is read afresh)
        return False

    def on_event(self, event: BoardEvent) -> None:
        if event.top is None:
            return  # the all-time top N did not change
        self._window.append(event)
        self._due()

    async def on_connected(self) -> None:
        self.wake_to_reread()  # events may have been missed while unsubscribed

    def on_disconnected(self) -> None:
        pass

    async def on_board_changed(self) -> None:
        self.wake_to_reread()

    def wake_to_reread(self) -> None:
        self._reread = True
        self._due()

    def _due(self) -> None:
        """Something may have moved the ranking: look now when quiet, else at the
        trailing edge of the interval."""
        self._dirty = True
        if self._task is None and self.subscribers:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._dirty and self.subscribers:
                wait = self._gap - (time.monotonic() - self._last_sent)
                if wait > 0:
                    await asyncio.sleep(wait)
                self._dirty = False
                await self._look()
        finally:
            self._task = None

    async def _look(self) -> None:
        window, self._window = self._window, []
        changes = [event for event in window if event.delta]  # a ban moves nobody's score
        if window and not self._reread:
            latest = max(window, key=lambda event: event.seq)
            assert latest.top is not None
            message = self._message(
                latest.stream_id, latest.top, latest.total_players, changes, latest.ts_ms, None
            )
            period: Period | None = None
        else:
            self._reread = False
            try:
                period, message = await self._read(changes)
            except ScoreboardError as exc:  # the board away or being rebuilt: keep the last
                log.debug("ranking %s/%s not read: %s", self.board, self.kind, exc.message)
                return
        if self._adopt(period, message):
            self._offer(message)

    def _offer(self, message: Broadcast) -> None:
        started = time.monotonic()
        direct = 0
        for subscriber in list(self.subscribers):
            direct += subscriber.offer(message)
        self._last_sent = time.monotonic()
        # Paced by the audience: the next broadcast waits at least as long as this one
        # took, so fan-out to many clients takes at most half the process's time and
        # requests keep being served; a burst then coalesces over a longer window.
        self._gap = max(self._interval, self._last_sent - started)
        self._stats.sent[self.board] += 1
        self._stats.written_directly[self.board] += direct

    async def stop(self) -> None:
        if self._period_end is not None:
            self._period_end.cancel()
            self._period_end = None
        task, self._task = self._task, None
        await cancel(task)


class LiveFeeds:
    """Every ranking followed in this process, its clients, and their sessions."""

    def __init__(self, boards: BoardRuntimes, channels: BoardChannels, interval_ms: int) -> None:
        self._boards = boards
        self.channels = channels
        self._interval = max(0.0, interval_ms / 1000)
        self.stats = LiveStats()
        self._feeds: dict[tuple[str, str], RankingFeed] = {}
        self._of: dict[Subscriber, RankingFeed] = {}
        self._watchers: dict[str, set[Callable[[], None]]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        # open streams (SSE, GraphQL subscriptions) per client address
        self.sse_streams: Counter[str] = Counter()
        self.closing = False  # the process is shutting down: streams end

    async def subscribe(
        self, board: str, kind: str, session_id: str | None = None
    ) -> tuple[Subscriber, Broadcast]:
        """A follower of the board's ranking of `kind` ('all' or a period kind), and its
        current state to send first. Raises for an unknown board (404) or a period
        the board does not have (404)."""
        config, runtime = await self._boards.board(board)
        self._boards.period(config, kind)  # validates the kind
        key = (config.name, kind)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = RankingFeed(
                self._boards, config.name, kind, self._interval, self.stats
            )
            channel = await self.channels.hold(runtime)
            channel.add_listener(feed)
        try:
            current = await feed.current()
        except BaseException:
            self._retire_soon(feed)
            raise
        subscriber = Subscriber(session_id)
        feed.subscribers.add(subscriber)
        self._of[subscriber] = feed
        return subscriber, current

    @asynccontextmanager
    async def stream(
        self, board: str, kind: str, ip: str, most: int
    ) -> AsyncIterator[tuple[Subscriber, Broadcast]]:
        """A follower for a stream of the client at `ip` (an SSE stream, a GraphQL
        subscription), at most `most` of them per address (429 past it); on leaving,
        unsubscribed and no longer counted."""
        if self.sse_streams[ip] >= most:
            raise RateLimitExceeded(
                "Too many live connections from this address", headers={"Retry-After": "5"}
            )
        subscriber, current = await self.subscribe(board, kind)
        self.sse_streams[ip] += 1
        try:
            yield subscriber, current
        finally:
            self.unsubscribe(subscriber)
            self.sse_streams[ip] -= 1
            if self.sse_streams[ip] <= 0:
                del self.sse_streams[ip]

    def feed(self, board: str, kind: str) -> RankingFeed | None:
        return self._feeds.get((board, kind))

    def unsubscribe(self, subscriber: Subscriber) -> None:
        feed = self._of.pop(subscriber, None)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers:
            self._retire_soon(feed)

    def _retire_soon(self, feed: RankingFeed) -> None:
        task = asyncio.get_running_loop().create_task(self._retire(feed))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _retire(self, feed: RankingFeed) -> None:
        """A feed nobody follows leaves its board's channel; the channel is let go with
        its last feed."""
        await asyncio.sleep(0)  # a re-subscription in the same instant keeps it
        key = (feed.board, feed.kind)
        if feed.subscribers or self._feeds.get(key) is not feed:
            return
        del self._feeds[key]
        await feed.stop()
        channel = self.channels.feed(feed.board)
        if channel is not None:
            channel.remove_listener(feed)
        await self.channels.release(feed.board)

    def followers(self) -> dict[str, int]:
        """Board name -> clients following one of its rankings here."""
        counts: dict[str, int] = {}
        for (board, _), feed in self._feeds.items():
            counts[board] = counts.get(board, 0) + len(feed.subscribers)
        return counts

    def watch_session(self, session_id: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Have `wake` called when the session is revoked; returns what stops it."""
        watchers = self._watchers.setdefault(session_id, set())
        watchers.add(wake)

        def unwatch() -> None:
            watchers.discard(wake)
            if not watchers and self._watchers.get(session_id) is watchers:
                del self._watchers[session_id]

        return unwatch

    def session_revoked(self, session_id: str) -> None:
        """Stop writing to the session's clients, and wake them and its watchers."""
        for subscriber in self._of:
            if subscriber.session_id == session_id:
                subscriber.write_frame = None
                subscriber.wake()
        for wake in list(self._watchers.get(session_id, ())):
            wake()

    def going_away(self) -> None:
        """The process is shutting down: wake every client so its stream ends."""
        self.closing = True
        for subscriber in self._of:
            subscriber.wake()

    async def close(self) -> None:
        for feed in self._feeds.values():
            await feed.stop()
        await self.channels.close()
