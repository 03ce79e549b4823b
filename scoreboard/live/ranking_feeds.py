"""Live feeds of the rankings other than the `global` board's all-time one (which the
hub serves from the process's own top N): another board's, or a period's.

A ranking's feed runs only while someone follows it, and reads the ranking's top 10
(one read script) only when something may have moved it: an event on the board's
update channel (an update, a ban, an unban, an adjustment, a season reset), a rebuild
or a new subscription to the channel, or the end of the period it shows (its followers
then get the new, empty period with the next reset). Nothing is read while nothing
changes. A change on a quiet ranking goes out at once; a burst becomes one read and one
message per broadcast interval. Followers share each message (serialised once); a slow
one skips states, as with the hub.

The events come over one subscription per followed board and process: the default
board's is the process's own feed; another board's is opened while one of its rankings
has followers, and closed when the last one leaves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scoreboard.boards.feed import BoardEvent, BoardFeed
from scoreboard.boards.runtime import BoardRuntimes
from scoreboard.core.errors import ScoreboardError
from scoreboard.core.periods import ALL_TIME, iso_utc
from scoreboard.core.tasks import cancel
from scoreboard.live.hub import Broadcast, Subscriber, board_data
from scoreboard.storage.keys import DEFAULT_BOARD

log = logging.getLogger("scoreboard.feeds")

TOP_SHOWN = 10
PERIOD_END_MARGIN_SECONDS = 0.05  # read a little after the end, when the new one holds


@dataclass(eq=False)
class RankingFeed:
    """One ranking followed in this process; a listener of its board's channel."""

    boards: BoardRuntimes
    board: str
    kind: str
    interval: float
    subscribers: set[Subscriber] = field(default_factory=set)
    last: Broadcast | None = None
    reads: int = 0  # reads of the ranking in Redis (tests count them)
    _shown: Any = None
    _ends_ms: int | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def read(self) -> Broadcast:
        config, runtime = await self.boards.board(self.board)
        period = self.boards.period(config, self.kind)
        self.reads += 1
        page = await self.boards.page(runtime, period, 0, TOP_SHOWN)
        self._ends_ms = None if period is None else period.ends_ms
        shown = (
            None if period is None else period.id,
            page.total_players,
            [(e.user_id, e.score, e.username) for e in page.entries],
        )
        if self.last is not None and shown == self._shown:
            return self.last
        latest = max((e.updated_ms or 0 for e in page.entries), default=0)
        data = board_data(page.entries, page.total_players, [], latest or int(time.time() * 1000))
        data.board, data.period = config.name, self.kind
        data.period_id = None if period is None else period.id
        data.next_reset_at = None if period is None else iso_utc(period.ends_ms)
        self._shown = shown
        self.last = Broadcast(f"{self.board}-{self.kind}-{page.sequence}", data)
        return self.last

    # FeedListener: any event of the board may move any of its rankings, and the
    # signal is all a feed needs (the ranking is read afresh), so nothing is parsed
    def wants(self, seq: int) -> bool:
        self._changed.set()
        return False

    def on_event(self, event: BoardEvent) -> None:
        self._changed.set()

    async def on_connected(self) -> None:
        self._changed.set()  # events may have been missed while unsubscribed

    def on_disconnected(self) -> None:
        pass

    async def on_board_changed(self) -> None:
        self._changed.set()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def _until_period_end(self) -> float | None:
        if self._ends_ms is None:
            return None
        left = (self._ends_ms - self.boards.now_ms()) / 1000
        return max(0.0, left) + PERIOD_END_MARGIN_SECONDS

    async def _follow(self) -> None:
        while self.subscribers:
            try:
                async with asyncio.timeout(self._until_period_end()):
                    await self._changed.wait()
            except TimeoutError:
                pass  # the shown period ended: show the new one
            self._changed.clear()
            if not self.subscribers:
                return
            previous = self.last
            message: Broadcast | None
            try:
                message = await self.read()
            except ScoreboardError as exc:  # the board away or being rebuilt: keep the last
                log.debug("ranking %s/%s not read: %s", self.board, self.kind, exc.message)
                message = previous
            if message is not None and message is not previous:
                for subscriber in list(self.subscribers):
                    subscriber.offer(message)
            await asyncio.sleep(self.interval)  # what moves meanwhile makes one read

    def wake(self) -> None:
        """Have the follower look at its subscribers (it ends when none is left)."""
        self._changed.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)


class RankingFeeds:
    def __init__(
        self,
        boards: BoardRuntimes,
        interval_ms: int,
        main_feed: BoardFeed | None = None,
        open_feed: Callable[[str], BoardFeed] | None = None,
    ) -> None:
        """`main_feed` is the process's subscription to the default board's channel;
        `open_feed(name)` makes a subscription to another board's."""
        self._boards = boards
        self._interval = max(0.05, interval_ms / 1000)
        self._main_feed = main_feed
        self._open_feed = open_feed
        self._feeds: dict[tuple[str, str], RankingFeed] = {}
        self._of: dict[Subscriber, RankingFeed] = {}
        self._board_feeds: dict[str, BoardFeed] = {}
        self._retiring: set[asyncio.Task[None]] = set()

    async def subscribe(
        self, board: str, kind: str, session_id: str | None = None
    ) -> tuple[Subscriber, Broadcast]:
        """A follower of the board's ranking of `kind` ('all' or a period kind), and its
        current state to send first. Raises for an unknown board (404) or a period
        the board does not have (400)."""
        config, _ = await self._boards.board(board)
        self._boards.period(config, kind)  # validates the kind
        key = (config.name, kind)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = RankingFeed(self._boards, config.name, kind, self._interval)
            await self._listen(feed)
        current = await feed.read()
        subscriber = Subscriber(session_id)
        feed.subscribers.add(subscriber)
        self._of[subscriber] = feed
        feed.start()
        return subscriber, current

    def _channel(self, board: str) -> BoardFeed | None:
        """The subscription to the board's channel: the process's own for the default
        board, else the one opened for its ranking feeds (None: not open)."""
        return self._main_feed if board == DEFAULT_BOARD else self._board_feeds.get(board)

    async def _listen(self, feed: RankingFeed) -> None:
        """Put the feed on its board's channel, subscribing to it when it is the first."""
        channel = self._channel(feed.board)
        if channel is None and self._open_feed is not None:
            channel = self._board_feeds[feed.board] = self._open_feed(feed.board)
            await channel.start()
        if channel is not None:
            channel.add_listener(feed)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        feed = self._of.pop(subscriber, None)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers:
            feed.wake()
            task = asyncio.get_running_loop().create_task(self._retire(feed))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _retire(self, feed: RankingFeed) -> None:
        """A feed nobody follows leaves its board's channel; the board's subscription
        ends with its last feed."""
        await asyncio.sleep(0)  # a re-subscription in the same instant keeps it
        if feed.subscribers or self._feeds.get((feed.board, feed.kind)) is not feed:
            return
        del self._feeds[(feed.board, feed.kind)]
        await feed.stop()
        channel = self._channel(feed.board)
        if channel is None:
            return
        channel.remove_listener(feed)
        if channel is not self._main_feed and not channel.has_listeners:
            del self._board_feeds[feed.board]
            await channel.stop()

    def followers(self) -> dict[str, int]:
        """Board name -> clients following one of its rankings here."""
        counts: dict[str, int] = {}
        for (board, _), feed in self._feeds.items():
            counts[board] = counts.get(board, 0) + len(feed.subscribers)
        return counts

    def board_subscriptions(self) -> list[str]:
        """The boards whose channel this process follows for ranking feeds."""
        return sorted(self._board_feeds)

    def session_revoked(self, session_id: str) -> None:
        for subscriber in self._of:
            if subscriber.session_id == session_id:
                subscriber.wake()

    async def close(self) -> None:
        for feed in self._feeds.values():
            await feed.stop()
        for board_feed in self._board_feeds.values():
            await board_feed.stop()
        self._board_feeds.clear()


def is_main(board: str, kind: str) -> bool:
    """The ranking the hub serves itself."""
    return board == DEFAULT_BOARD and kind == ALL_TIME
