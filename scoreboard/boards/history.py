"""Closed periods and past seasons, read from PostgreSQL (Redis keeps a closed period
only for a short grace). Ranked like the live rankings: higher score first, then the
earlier achiever (the lower update sequence); banned players are left out."""

from __future__ import annotations

import asyncpg

from scoreboard.core.periods import Period
from scoreboard.core.values import BoardEntry
from scoreboard.storage.read_replicas import ReadPools

_PERIOD_PAGE = """
SELECT p.user_id::text AS user_id, u.username, p.score,
       (extract(epoch FROM p.updated_at) * 1000)::bigint AS updated_ms
FROM period_scores p JOIN users u ON u.id = p.user_id
WHERE p.board = $1 AND p.period_id = $2 AND p.score > 0 AND NOT u.banned
ORDER BY p.score DESC, p.last_event_seq, p.user_id LIMIT $3 OFFSET $4
"""
_PERIOD_COUNT = """
SELECT count(*) FROM period_scores p JOIN users u ON u.id = p.user_id
WHERE p.board = $1 AND p.period_id = $2 AND p.score > 0 AND NOT u.banned
"""
_SEASON_PAGE = """
SELECT s.user_id::text AS user_id, u.username, s.score,
       (extract(epoch FROM s.updated_at) * 1000)::bigint AS updated_ms
FROM season_standings s JOIN users u ON u.id = s.user_id
WHERE s.board = $1 AND s.season = $2
ORDER BY s.score DESC, s.last_event_seq, s.user_id LIMIT $3 OFFSET $4
"""
_SEASON_COUNT = "SELECT count(*) FROM season_standings WHERE board = $1 AND season = $2"
_SEASON_ENDED = "SELECT 1 FROM season_resets WHERE board = $1 AND season = $2"


async def history_page(
    reads: ReadPools, board: str, period: Period, offset: int, limit: int
) -> tuple[list[BoardEntry], int] | None:
    """(entries, total players); None for a season that has not ended (or whose end
    the syncer, or the replica read from, has not seen yet)."""

    async def read(conn: asyncpg.Connection) -> tuple[list[asyncpg.Record], int] | None:
        if period.kind == "season":
            season = int(period.id.partition(":")[2])
            if await conn.fetchval(_SEASON_ENDED, board, season) is None:
                return None
            rows = await conn.fetch(_SEASON_PAGE, board, season, limit, offset)
            return rows, await conn.fetchval(_SEASON_COUNT, board, season)
        rows = await conn.fetch(_PERIOD_PAGE, board, period.id, limit, offset)
        return rows, await conn.fetchval(_PERIOD_COUNT, board, period.id)

    found = await reads.run(read)
    if found is None:
        return None
    rows, total = found
    entries = [
        BoardEntry(offset + i + 1, row["user_id"], row["username"], row["score"], row["updated_ms"])
        for i, row in enumerate(rows)
    ]
    return entries, int(total)
