"""A database at an older schema: the migrations before a version, applied as the
runner would have applied them then."""

from __future__ import annotations

import asyncpg

from scoreboard.storage.migrations import available


async def migrate_before(conn: asyncpg.Connection, version: int) -> None:
    await conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    for migration in available():
        if migration.version < version:
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
