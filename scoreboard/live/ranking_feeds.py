"""Live feeds of the rankings other than the `global` board's all-time one (which the
hub serves from the process's own top N): another board's, or a period's.

A ranking's feed runs only while someone follows it: every broadcast interval it reads
the ranking's top 10 (one read script) and sends it to its followers when it changed.
It names the current period on every read, so at a reset its followers get the new,
empty period, with the next reset. Followers share each message (serialised once);
a slow one skips states, as with the hub.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from scoreboard.boards.runtime import BoardRuntimes
from scoreboard.core.errors import ScoreboardError
from scoreboard.core.periods import ALL_TIME, iso_utc
from scoreboard.core.tasks import cancel
from scoreboard.live.hub import Broadcast, Subscriber, board_data
from scoreboard.storage.keys import DEFAULT_BOARD

log = logging.getLogger("scoreboard.feeds")

TOP_SHOWN = 10


@dataclass(eq=False)
class RankingFeed:
    boards: BoardRuntimes
    board: str
    kind: str
    interval: float
    subscribers: set[Subscriber] = field(default_factory=set)
    last: Broadcast | None = None
    _shown: Any = None
    _task: asyncio.Task[None] | None = None

    async def read(self) -> Broadcast:
        config, runtime = await self.boards.board(self.board)
        period = self.boards.period(config, self.kind)
        page = await self.boards.page(runtime, period, 0, TOP_SHOWN)
        shown = (
            None if period is None else period.id,
            page.total_players,
            [(e.user_id, e.score, e.username) for e in page.entries],
        )
        if self.last is not None and shown == self._shown:
            return self.last
        latest = max((e.updated_ms or 0 for e in page.entries), default=0)
        data = board_data(page.entries, page.total_players, [], latest or int(time.time() * 1000))
        data.update(
            board=config.name,
            period=self.kind,
            period_id=None if period is None else period.id,
            next_reset_at=None if period is None else iso_utc(period.ends_ms),
        )
        self._shown = shown
        self.last = Broadcast(f"{self.board}-{self.kind}-{page.sequence}", data)
        return self.last

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def _follow(self) -> None:
        while self.subscribers:
            await asyncio.sleep(self.interval)
            previous = self.last
            try:
                message = await self.read()
            except ScoreboardError as exc:  # the board away or being rebuilt: keep the last
                log.debug("ranking %s/%s not read: %s", self.board, self.kind, exc.message)
                continue
            if message is not previous:
                for subscriber in list(self.subscribers):
                    subscriber.offer(message)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)


class RankingFeeds:
    def __init__(self, boards: BoardRuntimes, interval_ms: int) -> None:
        self._boards = boards
        self._interval = max(0.05, interval_ms / 1000)
        self._feeds: dict[tuple[str, str], RankingFeed] = {}
        self._of: dict[Subscriber, RankingFeed] = {}

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
        current = await feed.read()
        subscriber = Subscriber(session_id)
        feed.subscribers.add(subscriber)
        self._of[subscriber] = feed
        feed.start()
        return subscriber, current

    def unsubscribe(self, subscriber: Subscriber) -> None:
        feed = self._of.pop(subscriber, None)
        if feed is not None:
            feed.subscribers.discard(subscriber)

    def followers(self) -> dict[str, int]:
        """Board name -> clients following one of its rankings here."""
        counts: dict[str, int] = {}
        for (board, _), feed in self._feeds.items():
            counts[board] = counts.get(board, 0) + len(feed.subscribers)
        return counts

    def session_revoked(self, session_id: str) -> None:
        for subscriber in self._of:
            if subscriber.session_id == session_id:
                subscriber.wake()

    async def close(self) -> None:
        for feed in self._feeds.values():
            await feed.stop()


def is_main(board: str, kind: str) -> bool:
    """The ranking the hub serves itself."""
    return board == DEFAULT_BOARD and kind == ALL_TIME
