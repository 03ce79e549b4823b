"""Scripts of what admins do to a board: bans, adjustments, season resets, audit records."""

from __future__ import annotations

from dataclasses import dataclass

from scoreboard.storage.keys import BoardKeys
from scoreboard.storage.scripts import replies
from scoreboard.storage.scripts.transport import ScriptTransport
from scoreboard.storage.statuses import ScriptStatus, refused, status_of


@dataclass(frozen=True)
class BanChange:
    """A ban or unban: the rank the player left or took (0: none) and the kept score."""

    rank: int
    score: int
    changed: bool


@dataclass(frozen=True)
class Adjusted:
    new_score: int
    new_rank: int  # 0: off the board
    old_score: int
    changed: bool


@dataclass(frozen=True)
class SeasonEnded:
    ended: int
    season: int
    players: int


class BoardAdminScripts(ScriptTransport):
    async def _ban_script(
        self,
        name: str,
        board: BoardKeys,
        user_id: str,
        top_n: int,
        period_ids: tuple[str, ...],
    ) -> BanChange:
        period_keys = [
            key
            for period_id in period_ids
            for key in (*board.period_ranking(period_id), board.period_banned(period_id))
        ]
        reply = await self._call(
            name,
            [
                board.leaderboard,
                board.players,
                board.banned,
                board.state,
                board.updates_channel,
                board.rebuild_lock,
                *period_keys,
            ],
            [user_id, top_n, board.name],
        )
        if status_of(reply) is not ScriptStatus.OK:
            raise refused(name, reply)
        moved = replies.read(name, reply)
        rank = moved.int("old_rank" if name == "ban_player" else "new_rank")
        return BanChange(rank, moved.int("score"), moved.flag("changed"))

    async def ban_player(
        self,
        board: BoardKeys,
        user_id: str,
        top_n: int,
        period_ids: tuple[str, ...] = (),
    ) -> BanChange:
        """Off the board and its current periods (`period_ids`), standing kept; no
        tokens or updates until unbanned."""
        return await self._ban_script("ban_player", board, user_id, top_n, period_ids)

    async def unban_player(
        self,
        board: BoardKeys,
        user_id: str,
        top_n: int,
        period_ids: tuple[str, ...] = (),
    ) -> BanChange:
        """Back on the board (and its current periods) with the kept score and tie
        position."""
        return await self._ban_script("unban_player", board, user_id, top_n, period_ids)

    async def adjust_score(
        self,
        board: BoardKeys,
        *,
        user_id: str,
        username: str,
        delta: int | None,
        ceiling: int,
        top_n: int,
        event_id: str,
        admin_id: str,
        reason: str,
    ) -> Adjusted:
        """An admin's change of a score; delta None removes the player's score."""
        reply = await self._call(
            "adjust_score",
            [
                board.leaderboard,
                board.players,
                board.banned,
                board.state,
                board.events,
                board.updates_channel,
            ],
            [
                user_id,
                username,
                "remove" if delta is None else "adjust",
                delta or 0,
                ceiling,
                top_n,
                event_id,
                board.name,
                admin_id,
                reason,
            ],
        )
        if status_of(reply) is not ScriptStatus.OK:
            raise refused("adjust_score", reply)
        adjusted = replies.read("adjust_score", reply)
        return Adjusted(
            adjusted.int("new_score"),
            adjusted.int("new_rank"),
            adjusted.int("old_score"),
            adjusted.flag("changed"),
        )

    async def record_audit(
        self,
        board: BoardKeys,
        *,
        window_start_s: int,
        subject: str,
        sample: int,
        ttl_ms: int,
        event_id: str,
        event_type: str,
        user_id: str | None,
        ip: str,
        user_agent: str,
        result: str,
        details_json: str,
    ) -> bool:
        """Append a security event; False when it was only counted (a flood)."""
        reply = await self._call(
            "record_audit",
            [board.events, board.audit_floods(window_start_s)],
            [
                subject,
                sample,
                ttl_ms,
                event_id,
                board.name,
                event_type,
                user_id or "",
                ip,
                user_agent,
                result,
                details_json,
            ],
        )
        return replies.read("record_audit", reply).flag("recorded")

    async def reset_season(
        self,
        board: BoardKeys,
        *,
        stored_season: int,
        event_id: str,
        admin_id: str,
        reason: str,
        ip: str,
        user_agent: str,
    ) -> SeasonEnded:
        """End the all-time ranking's season: emptied, the number up, a reset in the
        stream for the syncer to archive."""
        reply = await self._call(
            "reset_season",
            [
                board.leaderboard,
                board.players,
                board.banned,
                board.state,
                board.events,
                board.updates_channel,
                board.season,
                board.rebuild_lock,
            ],
            [stored_season, event_id, board.name, admin_id, reason, ip, user_agent],
        )
        if status_of(reply) is not ScriptStatus.OK:
            raise refused("reset_season", reply)
        reset = replies.read("reset_season", reply)
        return SeasonEnded(reset.int("ended"), reset.int("season"), reset.int("players"))
