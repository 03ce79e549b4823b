"""Batches persisted together take their players' rows in one order, so they queue
behind each other and never deadlock, whichever plan PostgreSQL picks."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from scoreboard.storage.database import create_pool
from scoreboard.storage.migrations import migrate
from scoreboard.sync.events import StreamEvent
from scoreboard.sync.persist import persist_fresh
from tests.stream_events import stream_event


@pytest_asyncio.fixture
async def pool(own_database: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(own_database, size=4)
    await migrate(pool)
    yield pool
    await pool.close()


def _now(user_id: str, seq: int, delta: int) -> StreamEvent:
    return stream_event(user_id, int(time.time() * 1000), seq, delta)


async def _players(pool: asyncpg.Pool, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        name = f"p{uuid.uuid4().hex[:12]}"
        ids.append(
            await pool.fetchval(
                "INSERT INTO users (username, username_key, email, password_hash)"
                " VALUES ($1, $1, $2, 'x') RETURNING id::text",
                name,
                f"{name}@example.com",
            )
        )
    return sorted(ids)


async def _locked_by_another(pool: asyncpg.Pool, user_id: str) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        try:
            await conn.execute(
                "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE NOWAIT", user_id
            )
        except asyncpg.LockNotAvailableError:
            return True
    return False


# Whichever plan PostgreSQL picks for a batch: the one a small batch gets (each player
# looked up by its id, in the batch's order), and the one of a batch of thousands of
# players (a scan of the whole table, in the order its pages hold the rows).
PLANS = {
    "chosen": [],
    "table_scan": ["SET LOCAL enable_indexscan = off", "SET LOCAL enable_bitmapscan = off"],
}


@pytest.mark.parametrize("plan", sorted(PLANS))
async def test_a_batch_takes_its_players_rows_in_id_order(pool: asyncpg.Pool, plan: str) -> None:
    """The row with the lower id sits after the other on its page (its last update
    moved it there), and another batch holds the higher one: a batch of both players
    must hold the lower one while it waits for the higher. Taken in the order the
    table's pages happen to hold them, two batches can each hold the row the other
    waits for: PostgreSQL then kills one of them as a deadlock."""
    low, high = await _players(pool, 2)
    await pool.execute("UPDATE users SET updated_at = now() WHERE id = $1", low)
    async with pool.acquire() as holder:
        holding = holder.transaction()
        await holding.start()
        await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", high)

        async def persist() -> None:
            async with pool.acquire() as conn, conn.transaction():
                for setting in PLANS[plan]:
                    await conn.execute(setting)
                await persist_fresh(conn, [_now(high, 1, 5), _now(low, 2, 7)])

        batch = asyncio.create_task(persist())
        try:
            await asyncio.sleep(0.5)
            assert not batch.done()
            assert await _locked_by_another(pool, low), "the lower id was not taken first"
        finally:
            await holding.rollback()
        await asyncio.wait_for(batch, 10)
    rows = await pool.fetch("SELECT id::text, current_score FROM users ORDER BY id")
    assert [(row["id"], row["current_score"]) for row in rows] == [(low, 7), (high, 5)]
