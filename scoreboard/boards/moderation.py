"""What an admin can do to a player, and the review views over the audit trail.

Bans live in PostgreSQL (the system of record: logins and refreshes check it, a
rebuilt board keeps banned players off) and on the board in Redis (the hot path:
tokens and updates are refused in the scripts, the player leaves every view at once).
PostgreSQL is written first, so a rebuild that snapshots after it keeps the ban, and
the board scripts refuse to run while a rebuild is staging the board, so a ban cannot
be overwritten by a board staged before it. A failure between the two leaves a
difference that reconciliation repairs; the admin's retry does the same at once.

Score changes go through the same atomic path as updates (lua/adjust_score.lua): the
event stream carries them to PostgreSQL with the admin's id and reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from msgspec import UnsetType

from scoreboard.auth.accounts import Accounts, User
from scoreboard.auth.audit import ADMIN_BAN, ADMIN_UNBAN, AuditTrail
from scoreboard.auth.sessions import Sessions
from scoreboard.auth.tokens import AccessClaims
from scoreboard.boards.leaderboard import Leaderboard
from scoreboard.boards.runtime import BoardRuntimes
from scoreboard.core.contract import (
    AuditItem,
    AuditPage,
    BanChanged,
    ScoreAdjusted,
    ScoreRemoved,
)
from scoreboard.core.errors import (
    BoardUnavailable,
    Conflict,
    InsufficientPermissions,
    InvalidRequest,
    MfaEnrolmentRequired,
    UserNotFound,
)
from scoreboard.core.event_ids import new_event_id
from scoreboard.core.periods import iso_instant, period_at
from scoreboard.core.settings import Settings
from scoreboard.storage.database import db_errors
from scoreboard.storage.keys import BoardKeys
from scoreboard.storage.read_replicas import ReadPools
from scoreboard.storage.scripts import BanChange, Scripts

log = logging.getLogger("scoreboard.admin")

BOARD_RETRIES = 20  # a rebuild holds the board for about a second at most
BOARD_RETRY_SECONDS = 0.1

_IS_ADMIN = """
SELECT u.role = 'admin' AND NOT u.banned AS admin,
       EXISTS (SELECT 1 FROM user_mfa m WHERE m.user_id = u.id AND m.enabled_at IS NOT NULL)
         AS mfa
FROM users u WHERE u.id = $1::uuid
"""
_SET_BANNED = """
UPDATE users SET banned = $2, banned_at = CASE WHEN $2 THEN now() END,
  banned_reason = CASE WHEN $2 THEN $3 END, updated_at = now()
WHERE id = $1::uuid
"""
_REVIEW_FILTER = "(a.validation_result = 'flagged' OR a.details->>'status' = 'ANTICHEAT_REJECTED')"
_LISTING = """
SELECT a.id, a.event_id::text AS event_id, a.event_type, a.user_id::text AS user_id,
       u.username, host(a.ip_address) AS ip_address, a.user_agent, a.score_change,
       a.validation_result, a.risk_score, a.details::text AS details, a.created_at
FROM audit_log a LEFT JOIN users u ON u.id = a.user_id
WHERE {where} AND ($1::bigint IS NULL OR a.id < $1)
ORDER BY a.id DESC LIMIT $2
"""

# the audit listing's filter: a time range always bounded (by infinities when not
# given), so that only the months it covers are read
AUDIT_RANGE = (
    "($3::text IS NULL OR a.event_type = $3) AND ($4::uuid IS NULL OR a.user_id = $4)"
    " AND a.created_at >= coalesce($5::timestamptz, '-infinity')"
    " AND a.created_at < coalesce($6::timestamptz, 'infinity')"
)
AUDIT_RECORDS = _LISTING.format(where=AUDIT_RANGE)


@dataclass(frozen=True)
class Meta:
    """Who acts, and from where: an admin through the API, or an operator on the
    command line (no admin account: `admin_id` empty, `operator` its user and host)."""

    admin_id: str
    ip: str
    user_agent: str
    operator: str = ""

    def actor(self) -> dict[str, str | None]:
        """Who acted, as the audit record's details name them."""
        if self.operator:
            return {"admin_id": None, "operator": self.operator}
        return {"admin_id": self.admin_id}


def clean_reason(reason: str | UnsetType) -> str:
    """The reason as recorded (its length and, where required, a non-blank character
    were checked as the body was read)."""
    return "" if isinstance(reason, UnsetType) else reason.strip()


def parse_delta(value: object, ceiling: int) -> int:
    if type(value) is not int or value == 0 or abs(value) > ceiling:
        raise InvalidRequest(
            f"delta must be a non-zero whole number from -{ceiling} to {ceiling}",
            details={"field": "delta"},
        )
    return value


def parse_cursor(raw: str | None) -> int | None:
    """None when absent; an empty or malformed cursor is 400."""
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise InvalidRequest(
            "cursor must be a value given as next_cursor", details={"field": "cursor"}
        )
    return int(raw)


def _item(row: asyncpg.Record) -> AuditItem:
    details = json.loads(row["details"] or "{}")
    return AuditItem(
        event_id=row["event_id"],
        event_type=row["event_type"],
        user_id=row["user_id"],
        username=row["username"],
        ip_address=row["ip_address"],
        user_agent=row["user_agent"],
        score_change=row["score_change"],
        validation_result=row["validation_result"],
        risk_score=row["risk_score"],
        reasons=details.get("reasons", []),
        details=details,
        timestamp=iso_instant(row["created_at"]),
    )


class Admin:
    def __init__(
        self,
        *,
        settings: Settings,
        pool: asyncpg.Pool,
        reads: ReadPools,
        scripts: Scripts,
        board: BoardKeys,
        accounts: Accounts,
        sessions: Sessions,
        audit: AuditTrail,
        leaderboard: Leaderboard,
        boards: BoardRuntimes,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._reads = reads  # listings, which may be a moment stale
        self._scripts = scripts
        self._board = board
        self._accounts = accounts
        self._sessions = sessions
        self._audit = audit
        self._leaderboard = leaderboard
        self._boards = boards

    async def require_admin(self, claims: AccessClaims) -> None:
        """The token says admin, and PostgreSQL still does (a demoted or banned admin
        loses the routes at once, not when their token expires)."""
        if claims.role != "admin":
            raise InsufficientPermissions("This route is for admins")
        async with db_errors():
            found = await self._pool.fetchrow(_IS_ADMIN, claims.user_id)
        if found is None or not found["admin"]:
            raise InsufficientPermissions("This route is for admins")
        if self._settings.mfa_required and not found["mfa"]:
            raise MfaEnrolmentRequired()

    async def _player(self, user_id: str) -> User:
        user = await self._accounts.by_id(user_id)
        if user is None:
            raise UserNotFound()
        return user

    async def _on_board(self, name: str, user_id: str) -> BanChange:
        """A ban script on every board, each retried while a rebuild holds it; this
        process's top N follows at once, before the answer (the others by the published
        change). The global board's change is the answer. Another board that cannot
        take it now (not built yet, say) gets it from PostgreSQL when it is built, or
        from the reconciliation."""
        call = self._scripts.ban_player if name == "ban" else self._scripts.unban_player
        for board in self._boards.all_keys():
            if board.name == self._board.name:
                continue
            try:
                await self._retried(call, board, user_id)
            except BoardUnavailable:
                log.warning("board %s did not take the %s of %s now", board.name, name, user_id)
        change = await self._retried(call, self._board, user_id)
        await self._leaderboard.on_board_changed()
        return change

    async def _retried(
        self,
        call: Callable[[BoardKeys, str, int, tuple[str, ...]], Awaitable[BanChange]],
        board: BoardKeys,
        user_id: str,
    ) -> BanChange:
        config = self._boards.catalog.get(board.name)
        kinds = () if config is None else config.periods
        now_ms = self._boards.now_ms()
        period_ids = tuple(period_at(kind, now_ms).id for kind in kinds)
        top_n = self._settings.live_top_n
        for _ in range(BOARD_RETRIES):
            try:
                return await call(board, user_id, top_n, period_ids)
            except BoardUnavailable:
                await asyncio.sleep(BOARD_RETRY_SECONDS)
        return await call(board, user_id, top_n, period_ids)

    async def ban(self, user_id: str, reason: str, meta: Meta) -> BanChanged:
        user = await self._player(user_id)
        if user.id == meta.admin_id:
            raise Conflict("An admin cannot ban themselves")
        async with db_errors():
            await self._pool.execute(_SET_BANNED, user_id, True, reason)
        change = await self._on_board("ban", user_id)
        revoked = await self._sessions.revoke_all(user_id, "banned")
        await self._audit.record(
            ADMIN_BAN,
            user_id=user_id,
            ip=meta.ip,
            user_agent=meta.user_agent,
            result="banned",
            details={
                **meta.actor(),
                "reason": reason,
                "score": change.score,
                "left_rank": change.rank or None,
                "sessions_revoked": revoked,
            },
        )
        return BanChanged(user_id=user_id, banned=True)

    async def unban(self, user_id: str, reason: str, meta: Meta) -> BanChanged:
        await self._player(user_id)
        async with db_errors():
            await self._pool.execute(_SET_BANNED, user_id, False, None)
        change = await self._on_board("unban", user_id)
        await self._audit.record(
            ADMIN_UNBAN,
            user_id=user_id,
            ip=meta.ip,
            user_agent=meta.user_agent,
            result="unbanned",
            details={
                **meta.actor(),
                "reason": reason,
                "score": change.score,
                "rank": change.rank or None,
            },
        )
        return BanChanged(user_id=user_id, banned=False)

    async def adjust(
        self, user_id: str, delta: int | None, reason: str, meta: Meta
    ) -> ScoreAdjusted | ScoreRemoved:
        """Add `delta` to the player's score; None removes it (total 0, off the board)."""
        user = await self._player(user_id)
        adjusted = await self._scripts.adjust_score(
            self._board,
            user_id=user_id,
            username=user.username,
            delta=delta,
            ceiling=self._settings.score_ceiling,
            top_n=self._settings.live_top_n,
            event_id=new_event_id(),
            admin_id=meta.admin_id,
            reason=reason,
        )
        # this process's top N follows at once, before the answer (the others by the
        # published change)
        await self._leaderboard.on_board_changed()
        if delta is None:
            return ScoreRemoved(user_id=user_id)
        return ScoreAdjusted(
            user_id=user_id, new_score=adjusted.new_score, rank=adjusted.new_rank or None
        )

    async def _list(self, where: str, args: list[Any], limit: int, cursor: int | None) -> AuditPage:
        sql = _LISTING.format(where=where)
        rows = await self._reads.fetch(sql, cursor, limit + 1, *args)
        items = [_item(row) for row in rows[:limit]]
        more = len(rows) > limit
        return AuditPage(items=items, next_cursor=str(rows[limit - 1]["id"]) if more else None)

    async def flagged(self, limit: int, cursor: int | None) -> AuditPage:
        """Flagged and anti-cheat-rejected updates, newest first."""
        return await self._list(_REVIEW_FILTER, [], limit, cursor)

    async def history(self, user_id: str, limit: int, cursor: int | None) -> AuditPage:
        """The player's updates with their risk, refusals, and admin actions on them."""
        await self._player(user_id)
        return await self._list("a.user_id = $3::uuid", [user_id], limit, cursor)

    async def audit_records(
        self,
        event_type: str | None,
        user_id: str | None,
        limit: int,
        cursor: int | None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> AuditPage:
        """Records of a type, of a player, and from `since` (included) to `until` (not
        included) when given."""
        return await self._list(AUDIT_RANGE, [event_type, user_id, since, until], limit, cursor)
