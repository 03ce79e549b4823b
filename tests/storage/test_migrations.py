from __future__ import annotations

import asyncio

import asyncpg

from scoreboard.storage.database import create_pool
from scoreboard.storage.migrations import available, migrate


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
        await conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for migration in available():
            if migration.version < 7:
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
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
