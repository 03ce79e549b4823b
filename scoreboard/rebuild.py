"""Restoring a board from PostgreSQL plus the stream's not-yet-persisted tail.

The board is assembled under staging keys and swapped in by one script, which then
catches up with updates applied meanwhile, so readers never see an empty board. A
board whose ready marker is gone (Redis lost its data) refuses updates until this has
run; the server runs it at start and the syncer whenever it finds the marker gone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from scoreboard.database import db_errors
from scoreboard.errors import ServiceUnavailable
from scoreboard.keys import DEFAULT_BOARD, Keys
from scoreboard.redis_store import RedisClient, as_text, redis_errors
from scoreboard.scripts import Scripts

log = logging.getLogger("scoreboard.rebuild")

INVERT = 999_999_999_999_999
CHUNK = 5000
LOCK_MS = 120_000
WAIT_FOR_OTHER_SECONDS = 120.0

_PLAYERS_SQL = """
SELECT id::text AS user_id, username, current_score AS score, last_event_seq AS seq,
       (extract(epoch FROM updated_at) * 1000)::bigint AS updated_ms
FROM users WHERE current_score > 0 OR last_event_seq > 0
"""


@dataclass
class Standing:
    username: str
    score: int
    seq: int
    updated_ms: int

    def member(self, user_id: str) -> str:
        return f"{INVERT - self.seq:015d}:{user_id}"


@dataclass(frozen=True)
class RebuildReport:
    players: int
    from_stream: int
    caught_up: int


async def _standings_from_postgres(pool: asyncpg.Pool) -> dict[str, Standing]:
    async with db_errors():
        rows = await pool.fetch(_PLAYERS_SQL)
    return {
        row["user_id"]: Standing(row["username"], row["score"], row["seq"], row["updated_ms"])
        for row in rows
    }


async def _apply_stream_tail(
    redis: RedisClient, events_key: str, standings: dict[str, Standing]
) -> tuple[int, str]:
    """Newer totals from applied events still in the stream; returns (count, last id)."""
    applied, last_id, start = 0, "0-0", "-"
    while True:
        async with redis_errors():
            entries = await redis.xrange(events_key, min=start, max="+", count=CHUNK) or []
        for stream_id, raw in entries:
            last_id = as_text(stream_id)
            fields = {as_text(k): as_text(v) for k, v in (raw or {}).items()}
            if fields.get("type") != "score_updated":
                continue
            seq, user_id = int(fields["seq"]), fields["user_id"]
            known = standings.get(user_id)
            if known is None or seq > known.seq:
                standings[user_id] = Standing(
                    fields["username"], int(fields["new_score"]), seq, int(fields["ts"])
                )
                applied += 1
        if len(entries) < CHUNK:
            return applied, last_id
        start = f"({last_id}"


async def _stage(
    redis: RedisClient, staging: tuple[str, str], standings: dict[str, Standing]
) -> None:
    staged_board, staged_players = staging
    items = list(standings.items())
    async with redis_errors():
        await redis.delete(staged_board, staged_players)
        for offset in range(0, len(items), CHUNK):
            chunk = items[offset : offset + CHUNK]
            ranked = {s.member(uid): s.score for uid, s in chunk if s.score > 0}
            pipe = redis.pipeline(transaction=False)
            if ranked:
                pipe.zadd(staged_board, ranked)
            pipe.hset(
                staged_players,
                mapping={uid: f"{s.member(uid)}|{s.updated_ms}|{s.username}" for uid, s in chunk},
            )
            await pipe.execute()


async def rebuild_board(
    redis: RedisClient,
    pool: asyncpg.Pool,
    keys: Keys,
    scripts: Scripts,
    board: str = DEFAULT_BOARD,
) -> RebuildReport:
    """Rebuild now (the caller holds the rebuild lock or accepts a concurrent one)."""
    standings = await _standings_from_postgres(pool)
    from_stream, last_id = await _apply_stream_tail(redis, keys.events(board), standings)
    staging = keys.rebuild_staging(board)
    await _stage(redis, staging, standings)
    max_seq = max((s.seq for s in standings.values()), default=0)
    caught_up = await scripts.install_board(
        [
            *staging,
            keys.leaderboard(board),
            keys.players(board),
            keys.sequence(board),
            keys.board_ready(board),
            keys.events(board),
        ],
        max_seq,
        last_id,
    )
    report = RebuildReport(len(standings), from_stream, caught_up)
    log.info("board %s rebuilt: %s", board, report)
    return report


async def _needs_rebuild(redis: RedisClient, pool: asyncpg.Pool, keys: Keys, board: str) -> bool:
    async with redis_errors():
        if await redis.zcard(keys.leaderboard(board)) > 0:
            return False
        if await redis.xlen(keys.events(board)) > 0:
            return True
    async with db_errors():
        return bool(
            await pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM users WHERE current_score > 0 OR last_event_seq > 0)"
            )
        )


@asynccontextmanager
async def _rebuild_lock(redis: RedisClient, keys: Keys, board: str) -> AsyncIterator[bool]:
    """Yields whether this process holds the board's rebuild lock."""
    lock, owner = keys.rebuild_lock(board), secrets.token_hex(8)
    async with redis_errors():
        held = bool(await redis.set(lock, owner, nx=True, px=LOCK_MS))
    try:
        yield held
    finally:
        if held:
            async with redis_errors():
                if as_text(await redis.get(lock) or b"") == owner:
                    await redis.delete(lock)


async def rebuild_with_lock(
    redis: RedisClient,
    pool: asyncpg.Pool,
    keys: Keys,
    scripts: Scripts,
    board: str = DEFAULT_BOARD,
) -> RebuildReport:
    """An operator's rebuild: refused while another process is rebuilding."""
    async with _rebuild_lock(redis, keys, board) as held:
        if not held:
            raise ServiceUnavailable("Another process is rebuilding this board")
        return await rebuild_board(redis, pool, keys, scripts, board)


async def ensure_board(
    redis: RedisClient,
    pool: asyncpg.Pool,
    keys: Keys,
    scripts: Scripts,
    board: str = DEFAULT_BOARD,
) -> str:
    """Make the board ready for updates, rebuilding it first when Redis lost it.
    Returns 'ready', 'created' or 'rebuilt'. Only one process rebuilds at a time."""
    ready = keys.board_ready(board)
    async with redis_errors():
        if await redis.exists(ready):
            return "ready"
    async with _rebuild_lock(redis, keys, board) as held:
        if not held:
            await _wait_for(redis, ready)
            return "ready"
        if await _needs_rebuild(redis, pool, keys, board):
            await rebuild_board(redis, pool, keys, scripts, board)
            return "rebuilt"
        async with redis_errors():
            await redis.set(ready, "1")
        return "created"


async def _wait_for(redis: RedisClient, ready: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_FOR_OTHER_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        if await redis.exists(ready):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("another process has been rebuilding the board for too long")
