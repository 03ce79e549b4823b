from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from scoreboard.database import create_pool
from scoreboard.migrations import available, migrate
from tests.services_under_test import postgres_server, scratch_database


@pytest.fixture
def empty_database() -> Iterator[str]:
    with postgres_server() as admin_dsn, scratch_database(admin_dsn) as dsn:
        yield dsn


async def test_processes_starting_at_once_apply_each_migration_once(
    empty_database: str,
) -> None:
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
