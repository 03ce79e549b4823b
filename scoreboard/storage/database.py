"""The PostgreSQL edge: the asyncpg pool and the mapping of driver errors to ours."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from scoreboard.core.errors import NOT_APPLIED, UNKNOWN, DatabaseUnavailable

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


# PostgreSQL's binary `inet`: family (2 = IPv4, 3 = IPv6), prefix bits, is-cidr, length,
# then the address bytes.
_INET_FAMILY = {4: 2, 6: 3}


@functools.lru_cache(maxsize=4096)
def _inet_bytes(text: str) -> bytes:
    address = ipaddress.ip_address(text)
    packed = address.packed
    return bytes((_INET_FAMILY[address.version], address.max_prefixlen, 0, len(packed))) + packed


def encode_inet(value: object) -> bytes:
    """An address (text or `ipaddress` object) in the binary format, cached by its text:
    the driver's own encoder parses the text again for every row of a COPY."""
    return _inet_bytes(str(value))


def decode_inet(
    data: bytes,
) -> (
    ipaddress.IPv4Address
    | ipaddress.IPv6Address
    | ipaddress.IPv4Interface
    | ipaddress.IPv6Interface
):
    bits, packed = data[1], data[4:]
    if bits == len(packed) * 8:
        return ipaddress.ip_address(packed)
    return ipaddress.ip_interface((packed, bits))


async def _setup_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "inet", schema="pg_catalog", encoder=encode_inet, decoder=decode_inet, format="binary"
    )


async def create_pool(dsn: str, *, size: int) -> asyncpg.Pool:
    async with db_errors():
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=size,
            timeout=CONNECT_TIMEOUT_SECONDS,
            command_timeout=COMMAND_TIMEOUT_SECONDS,
            init=_setup_connection,
        )
    return pool


# no connection could be had: no statement was sent
_NOT_CONNECTED = (
    ConnectionRefusedError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)


@asynccontextmanager
async def db_errors() -> AsyncIterator[None]:
    """Turn an unreachable PostgreSQL into SERVICE_UNAVAILABLE; its outcome is unknown
    unless no connection could be made (a cut connection may have committed)."""
    try:
        yield
    except _UNAVAILABLE as exc:
        if isinstance(exc, ValueError):
            raise  # the driver refused a value (out of a column's range): a bad row
        outcome = NOT_APPLIED if isinstance(exc, _NOT_CONNECTED) else UNKNOWN
        raise DatabaseUnavailable(outcome=outcome) from exc
