"""Board reads. The top N of the board is kept in each process, refreshed by the update
events (and by this process's own writes before they are answered), so top-10 reads
cost no Redis round trip; deeper reads run one read script.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scoreboard.board_feed import BoardEvent
from scoreboard.keys import DEFAULT_BOARD, Keys
from scoreboard.scripts import BoardEntry, BoardPage, PlayerPosition, Scripts

TOP10 = 10


def iso_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def entry_json(entry: BoardEntry) -> dict[str, Any]:
    return {
        "rank": entry.rank,
        "user_id": entry.user_id,
        "username": entry.username,
        "score": entry.score,
        "last_updated": iso_ms(entry.updated_ms),
    }


def board_json(entries: list[BoardEntry], total_players: int) -> dict[str, Any]:
    latest = max((e.updated_ms for e in entries if e.updated_ms), default=None)
    return {
        "leaderboard": [entry_json(entry) for entry in entries],
        "last_updated": iso_ms(latest),
        "total_players": total_players,
    }


@dataclass
class TopSnapshot:
    """The board's top N at update `seq`; its top-10 answer is serialised once."""

    seq: int
    total_players: int
    entries: list[BoardEntry]
    _top10_body: bytes | None = field(default=None, repr=False)

    def top10_body(self) -> bytes:
        if self._top10_body is None:
            data = board_json(self.entries[:TOP10], self.total_players)
            envelope = {"success": True, "data": data}
            self._top10_body = json.dumps(envelope, separators=(",", ":")).encode()
        return self._top10_body


class Leaderboard:
    """Reads of one board; listens to its feed to keep the top N current."""

    def __init__(self, scripts: Scripts, keys: Keys, top_n: int, board: str = DEFAULT_BOARD):
        self._scripts = scripts
        self._top_n = top_n
        self._range_keys = [keys.leaderboard(board), keys.players(board), keys.sequence(board)]
        self._around_keys = [keys.leaderboard(board), keys.players(board)]
        self._snapshot: TopSnapshot | None = None
        self._live = False

    # FeedListener
    def wants(self, seq: int) -> bool:
        return self._snapshot is None or seq > self._snapshot.seq

    def on_event(self, event: BoardEvent) -> None:
        self.apply(event.seq, event.total_players, event.top)

    async def on_connected(self) -> None:
        self._live = True
        await self._reload()

    def on_disconnected(self) -> None:
        self._live = False

    def apply(self, seq: int, total_players: int, top: list[BoardEntry] | None) -> None:
        """Take a newer state: a full top N, or only the new player count when the
        update left the top N alone."""
        current = self._snapshot
        if current is not None and seq <= current.seq:
            return
        if top is not None:
            self._snapshot = TopSnapshot(seq, total_players, top)
        elif current is not None:
            self._snapshot = TopSnapshot(seq, total_players, current.entries)

    async def _reload(self) -> TopSnapshot:
        page = await self._scripts.read_range(self._range_keys, 0, self._top_n - 1)
        fresh = TopSnapshot(page.sequence, page.total_players, page.entries)
        current = self._snapshot
        if current is None or fresh.seq >= current.seq:
            self._snapshot = fresh
            return fresh
        return current

    async def top(self) -> TopSnapshot:
        """The cached top N while the feed is live; straight from Redis otherwise."""
        if self._live and self._snapshot is not None:
            return self._snapshot
        return await self._reload()

    async def page(self, offset: int, limit: int) -> BoardPage:
        if offset + limit <= self._top_n:
            snapshot = await self.top()
            return BoardPage(
                snapshot.total_players,
                snapshot.seq,
                snapshot.entries[offset : offset + limit],
            )
        return await self._scripts.read_range(self._range_keys, offset, offset + limit - 1)

    async def around(self, user_id: str, radius: int) -> PlayerPosition:
        return await self._scripts.read_around(self._around_keys, user_id, radius)
