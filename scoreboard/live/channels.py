"""This process's subscriptions to boards' update channels: one per board while held.

A board's channel is held while one of its rankings has followers here, and for as long
as the process runs when it is pinned (the process pins the board its board-less routes
read: their top 10 is the hot read, and that subscription's connection carries the
process's other channels). While a board's channel is held, its top N is kept in memory
from its events (the board's `Leaderboard` listens first, so the ranking feeds after it
see the event's state), and its guard checks the board every round and tells the copy
when the board is rebuilt or lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from scoreboard.boards.feed import BoardFeed
from scoreboard.boards.leaderboard import Leaderboard
from scoreboard.boards.runtime import BoardRuntime


@dataclass
class LiveCopy:
    """What the process holds of a followed board (its top N, what its feeds showed),
    dropped and read afresh when the board guard finds the board changed."""

    leaderboard: Leaderboard
    feed: BoardFeed

    @property
    def epoch(self) -> str | None:
        return self.leaderboard.epoch

    def board_changed(self) -> None:
        self.leaderboard.invalidate()
        self.feed.resync()


@dataclass
class _Held:
    runtime: BoardRuntime
    feed: BoardFeed
    holders: int


class BoardChannels:
    def __init__(self, open_feed: Callable[[str], BoardFeed]) -> None:
        """`open_feed(name)` makes a subscription to the board's channel."""
        self._open_feed = open_feed
        self._held: dict[str, _Held] = {}

    async def hold(self, runtime: BoardRuntime, feed: BoardFeed | None = None) -> BoardFeed:
        """The board's channel, subscribed to with its first holder (through `feed`
        when given: one made with other channels on it)."""
        name = runtime.keys.name
        held = self._held.get(name)
        if held is not None:
            held.holders += 1
            return held.feed
        feed = feed or self._open_feed(name)
        self._held[name] = _Held(runtime, feed, 1)  # before any await: one per board
        feed.add_listener(runtime.leaderboard)
        runtime.guard.follow(LiveCopy(runtime.leaderboard, feed))
        await feed.start()
        return feed

    def feed(self, name: str) -> BoardFeed | None:
        held = self._held.get(name)
        return None if held is None else held.feed

    async def release(self, name: str) -> None:
        """One holder less; the last one ends the subscription and the kept copy."""
        held = self._held.get(name)
        if held is None:
            return
        held.holders -= 1
        if held.holders > 0:
            return
        del self._held[name]
        await self._end(held)

    @staticmethod
    async def _end(held: _Held) -> None:
        held.runtime.guard.follow(None)
        await held.feed.stop()
        held.feed.remove_listener(held.runtime.leaderboard)
        held.runtime.leaderboard.on_disconnected()
        held.runtime.leaderboard.invalidate()

    def held(self) -> list[str]:
        """The boards whose channel this process follows."""
        return sorted(self._held)

    def connected(self) -> dict[str, bool]:
        """Board name -> whether its subscription is up."""
        return {name: held.feed.connected for name, held in sorted(self._held.items())}

    async def close(self) -> None:
        held, self._held = list(self._held.values()), {}
        for one in held:
            await one.feed.stop()
