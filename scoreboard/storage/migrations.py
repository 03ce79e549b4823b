"""Ordered SQL migrations (`migrations/NNNN_name.sql`) tracked in `schema_migrations`.

Each file runs in its own transaction while the runner holds an advisory lock, so
several processes starting at once apply every migration exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from scoreboard.storage.database import db_errors

MIGRATIONS_DIR = Path(__file__).resolve().parent / "sql"
_LOCK_ID = 0x5C0_4EB0A4D  # arbitrary, constant: "scoreboard migrations"
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME_RE.match(path.name)
        if not match:
            raise ValueError(f"migration file {path.name} does not match NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    return found


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply every migration not applied yet; return the versions applied now."""
    async with db_errors(), pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            return await _apply_pending(conn)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)


async def _apply_pending(conn: asyncpg.Connection) -> list[int]:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    applied_now: list[int] = []
    for migration in available():
        if migration.version in done:
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        applied_now.append(migration.version)
    return applied_now
