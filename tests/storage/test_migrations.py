from __future__ import annotations

import asyncio

import asyncpg

from scoreboard.storage.database import create_pool
from scoreboard.storage.migrations import available, migrate
from tests.storage.migration_helpers import migrate_before


async def test_processes_starting_at_once_apply_each_migration_once(
    own_database: str,
) -> None:
    empty_database = own_database
    pools = [await create_pool(empty_database, size=2) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(pool) for pool in pools))
    finally:
        for pool in pools:
            await pool.close()
    versions = [migration.version for migration in available()]
    assert sorted(v for run in applied for v in run) == versions
    conn = await asyncpg.connect(empty_database)
    try:
        rows = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in rows] == versions
        tables = {
            row["tablename"]
            for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert {"users", "scores", "action_tokens", "audit_log"} <= tables
    finally:
        await conn.close()


async def test_the_global_boards_totals_move_to_board_scores_and_users_follow(
    own_database: str,
) -> None:
    """An existing deployment's global totals (in users) land in board_scores, the one
    layout of every board; users.current_score and total_score keep their figures."""
    conn = await asyncpg.connect(own_database)
    try:
        await migrate_before(conn, 7)
        player = await conn.fetchval(
            "INSERT INTO users (username, username_key, email, password_hash, current_score,"
            " total_score, last_event_seq) VALUES ('old', 'old', 'old@example.test', 'x',"
            " 42, 50, 7) RETURNING id"
        )
        pool = await create_pool(own_database, size=1)
        try:
            assert await migrate(pool) == [m.version for m in available() if m.version >= 7]
        finally:
            await pool.close()
        moved = await conn.fetchrow(
            "SELECT score, last_event_seq FROM board_scores WHERE board = 'global'"
            " AND user_id = $1",
            player,
        )
        assert (moved["score"], moved["last_event_seq"]) == (42, 7)

        users = await conn.fetchrow(
            "SELECT current_score, total_score, last_event_seq FROM users WHERE id = $1", player
        )
        assert tuple(users) == (42, 50, 7)  # the spec's figures stay as they were
    finally:
        await conn.close()


# Every index on the tables each persisted event writes, and who reads it: the spec's
# schema, a unique constraint a write relies on, or an admin listing's order. An index
# nobody reads costs every event a write and is not kept.
WRITTEN_PER_EVENT_INDEXES = {
    "scores": {
        "scores_pkey",  # one row per event id: a replayed batch inserts nothing twice
        "idx_scores_user_id",  # the spec's schema
        "idx_scores_created_at",  # the spec's schema
    },
    "action_tokens": {
        "action_tokens_pkey",  # one row per event id
        "action_tokens_token_hash_key",  # the spec's schema (a token is spent once)
        "idx_action_tokens_expires",  # the spec's schema
    },
    "audit_log": {
        "audit_log_pkey",  # the listings' cursor
        "audit_log_event_id_key",  # one row per event id
        "idx_audit_log_review",  # the review queue, newest first
        "idx_audit_log_user_order",  # a player's history, newest first
        "idx_audit_log_type_order",  # the audit listing by type, newest first
    },
    "board_scores": {"board_scores_pkey"},  # the upsert of a player's total
    "period_scores": {
        "period_scores_pkey",  # the upsert of a player's period total
        "idx_period_scores_rank",  # a closed period's ranking, read from PostgreSQL
    },
}


async def test_each_persisted_event_writes_only_indexes_that_are_read(own_database: str) -> None:
    pool = await create_pool(own_database, size=1)
    try:
        await migrate(pool)
        rows = await pool.fetch(
            "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename = ANY($1::text[])",
            list(WRITTEN_PER_EVENT_INDEXES),
        )
    finally:
        await pool.close()
    found: dict[str, set[str]] = {}
    for row in rows:
        found.setdefault(row["tablename"], set()).add(row["indexname"])
    assert found == WRITTEN_PER_EVENT_INDEXES
