"""Board reads. The top N of the board is kept in each process, refreshed by the update
events (and by this process's own writes before they are answered), so top-10 reads
cost no Redis round trip; deeper reads run one read script.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, TypeVar

from scoreboard.boards.feed import BoardEvent
from scoreboard.core.contract import Board, Entry, envelope
from scoreboard.core.errors import BoardUnavailable
from scoreboard.core.periods import iso_utc
from scoreboard.storage.keys import BoardKeys
from scoreboard.storage.scripts import BoardEntry, BoardPage, PlayerPosition, Scripts

TOP10 = 10
B = TypeVar("B", bound=Board)


def iso_ms(ms: int | None) -> str | None:
    return None if ms is None else iso_utc(ms)


def entry_reply(entry: BoardEntry) -> Entry:
    return Entry(
        rank=entry.rank,
        user_id=entry.user_id,
        username=entry.username,
        score=entry.score,
        last_updated=iso_ms(entry.updated_ms),
    )


def board_reply(shape: type[B], entries: list[BoardEntry], total_players: int, **fields: Any) -> B:
    """A page of a ranking as `shape` (a Board, or a labelled one, with `fields`)."""
    latest = max((e.updated_ms for e in entries if e.updated_ms), default=None)
    return shape(
        leaderboard=[entry_reply(entry) for entry in entries],
        last_updated=iso_ms(latest),
        total_players=total_players,
        **fields,
    )


@dataclass
class TopSnapshot:
    """The board's top N at update `seq` of build `epoch`; its top-10 answer is
    serialised once."""

    seq: int
    total_players: int
    entries: list[BoardEntry]
    epoch: str = ""
    _top10_body: bytes | None = field(default=None, repr=False)

    def top10_body(self) -> bytes:
        if self._top10_body is None:
            self._top10_body = envelope(
                board_reply(Board, self.entries[:TOP10], self.total_players)
            )
        return self._top10_body


class Leaderboard:
    """Reads of one board; listens to its feed to keep the top N current.

    The copy belongs to one build of the board (its epoch). A state of another build
    replaces it whatever its sequence (a rebuilt board may count from lower), and a
    rebuild, a lost board or a state of another build without a top drops it, so the
    next read goes to Redis."""

    def __init__(self, scripts: Scripts, board: BoardKeys, top_n: int):
        self._scripts = scripts
        self._top_n = top_n
        self._board = board
        self._snapshot: TopSnapshot | None = None
        self._live = False

    @property
    def epoch(self) -> str | None:
        """The build this process's copy belongs to (None: no copy)."""
        return None if self._snapshot is None else self._snapshot.epoch

    def invalidate(self) -> None:
        self._snapshot = None

    # FeedListener
    def wants(self, seq: int) -> bool:
        """A rebuild's announcement drops the copy first, so a new build's lower
        sequence numbers are still wanted."""
        return self._snapshot is None or seq > self._snapshot.seq

    def on_event(self, event: BoardEvent) -> None:
        self.apply(event.epoch, event.seq, event.total_players, event.top)

    async def on_connected(self) -> None:
        self._live = True
        await self.on_board_changed()  # whatever was missed while away

    async def on_board_changed(self) -> None:
        self.invalidate()
        with contextlib.suppress(BoardUnavailable):
            await self._reload()

    def on_disconnected(self) -> None:
        self._live = False

    def apply(self, epoch: str, seq: int, total_players: int, top: list[BoardEntry] | None) -> None:
        """Take a newer state: a full top N, or only the new player count when the
        update left the top N alone."""
        current = self._snapshot
        if current is not None and current.epoch != epoch:
            current = self._snapshot = None
        if current is not None and seq <= current.seq:
            return
        if top is not None:
            self._snapshot = TopSnapshot(seq, total_players, top, epoch)
        elif current is not None:
            self._snapshot = TopSnapshot(seq, total_players, current.entries, epoch)

    async def _reload(self) -> TopSnapshot:
        page = await self._scripts.read_range(self._board, 0, self._top_n - 1)
        fresh = TopSnapshot(page.sequence, page.total_players, page.entries, page.epoch)
        current = self._snapshot
        if current is None or current.epoch != fresh.epoch or fresh.seq >= current.seq:
            self._snapshot = fresh
            return fresh
        return current

    async def top(self) -> TopSnapshot:
        """The cached top N while the feed is live; straight from Redis otherwise."""
        snapshot = self._snapshot
        if self._live and snapshot is not None:
            return snapshot
        return await self._reload()

    async def page(self, offset: int, limit: int) -> BoardPage:
        if offset + limit <= self._top_n:
            snapshot = await self.top()
            return BoardPage(
                snapshot.total_players,
                snapshot.seq,
                snapshot.entries[offset : offset + limit],
                snapshot.epoch,
            )
        return await self._scripts.read_range(self._board, offset, offset + limit - 1)

    async def around(self, user_id: str, radius: int) -> PlayerPosition:
        return await self._scripts.read_around(self._board, user_id, radius)
