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
