"""A live-feed message: built once per broadcast and serialised once per process, in
each form a client takes it (a WebSocket text, its shared frame, an SSE event's data)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import msgspec

from scoreboard.boards.feed import BoardEvent
from scoreboard.boards.leaderboard import entry_reply, iso_ms
from scoreboard.core.contract import Change, LeaderboardUpdate, encode
from scoreboard.core.values import BoardEntry
from scoreboard.http.ws_protocol import text_frame


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
