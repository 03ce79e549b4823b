"""Scripts of a rebuild and of the syncer: installing a staged board, keeping and
releasing a board's holds, trimming the stream."""

from __future__ import annotations

from typing import Literal

from scoreboard.storage.keys import BoardKeys
from scoreboard.storage.scripts import replies
from scoreboard.storage.scripts.transport import ScriptTransport
from scoreboard.storage.statuses import ScriptStatus, status_of

# A board's holds: its rebuild lock, and the trim hold a reconcile keeps while comparing.
Hold = Literal["rebuild", "trim"]


def hold_key(board: BoardKeys, hold: Hold) -> str:
    """The key of one of the board's holds."""
    return board.rebuild_lock if hold == "rebuild" else board.trim_hold


class RebuildScripts(ScriptTransport):
    async def install_board(
        self,
        board: BoardKeys,
        max_seq: int,
        last_stream_id: str,
        epoch: str,
        periods: list[tuple[str, int]] | None = None,
    ) -> tuple[int, int]:
        """Swap a staged board (and its current periods' rankings: (period id, ms its
        keys stay)) into place; returns (events caught up, board sequence)."""
        periods = periods or []
        period_keys = [
            key
            for period_id, _ in periods
            for key in (
                *board.period_staging(period_id),
                *board.period_ranking(period_id),
                board.period_banned(period_id),
            )
        ]
        reply = await self._call(
            "install_board",
            [
                *board.rebuild_staging,
                board.leaderboard,
                board.players,
                board.banned,
                board.state,
                board.events,
                board.updates_channel,
                *period_keys,
            ],
            [
                max_seq,
                last_stream_id,
                epoch,
                ",".join(period_id for period_id, _ in periods),
                ",".join(str(max(1, keep_ms)) for _, keep_ms in periods),
            ],
        )
        installed = replies.read("install_board", reply)
        return installed.int("caught_up"), installed.int("seq")

    async def keep_hold(self, board: BoardKeys, hold: Hold, owner: str, ms: int) -> bool:
        """Extend the board's hold while `owner` has it; False when it is gone or
        another's."""
        reply = await self._call("keep_hold", [hold_key(board, hold)], [owner, ms])
        return replies.read("keep_hold", reply).int("held") == 1

    async def release_hold(self, board: BoardKeys, hold: Hold, owner: str) -> bool:
        """Delete the board's hold if `owner` still has it."""
        reply = await self._call("release_hold", [hold_key(board, hold)], [owner])
        return replies.read("release_hold", reply).int("released") == 1

    async def trim_stream(self, board: BoardKeys, min_id: str) -> int | None:
        """Trim what the syncer persisted; None while a rebuild or a reconcile holds the
        stream."""
        reply = await self._call(
            "trim_stream", [board.events, board.rebuild_lock, board.trim_hold], [min_id]
        )
        if status_of(reply) is ScriptStatus.REBUILDING:
            return None
        return replies.read("trim_stream", reply).int("trimmed")
