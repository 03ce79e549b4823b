"""The PostgreSQL edge: the asyncpg pool and the mapping of driver errors to ours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from scoreboard.errors import ServiceUnavailable

CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 10.0

_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
)


async def create_pool(dsn: str, *, size: int) -> asyncpg.Pool:
    async with db_errors():
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=size,
            timeout=CONNECT_TIMEOUT_SECONDS,
            command_timeout=COMMAND_TIMEOUT_SECONDS,
        )
    return pool


@asynccontextmanager
async def db_errors() -> AsyncIterator[None]:
    """Turn an unreachable PostgreSQL into SERVICE_UNAVAILABLE."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise ServiceUnavailable("PostgreSQL is unavailable") from exc
