"""The Redis and PostgreSQL the benchmarks run against: REDIS_URL and DATABASE_URL (a
PostgreSQL login that may create databases), or the servers on this machine."""

from __future__ import annotations

import os


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def admin_dsn() -> str:
    return os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
