"""The PostgreSQL edge: addresses travel in the binary `inet` format both ways."""

from __future__ import annotations

import ipaddress

import asyncpg
import pytest

from scoreboard.storage.database import create_pool, decode_inet, encode_inet


async def test_addresses_round_trip_through_postgresql(database_url: str) -> None:
    pool = await create_pool(database_url, size=1)
    try:
        for text in ("127.0.0.1", "203.0.113.9", "::1", "2001:db8::5"):
            assert await pool.fetchval("SELECT host($1::inet)", text) == text
            value = await pool.fetchval("SELECT $1::inet", ipaddress.ip_address(text))
            assert value == ipaddress.ip_address(text)
        assert await pool.fetchval("SELECT '10.0.0.0/8'::inet") == ipaddress.ip_interface(
            "10.0.0.0/8"
        )
        assert await pool.fetchval("SELECT '2001:db8::1/64'::inet") == ipaddress.ip_interface(
            "2001:db8::1/64"
        )
        with pytest.raises(asyncpg.DataError):
            await pool.fetchval("SELECT $1::inet", "not an address")
    finally:
        await pool.close()


def test_the_binary_form_matches_postgresql_layout() -> None:
    assert encode_inet("192.0.2.1") == bytes((2, 32, 0, 4, 192, 0, 2, 1))
    assert encode_inet(ipaddress.ip_address("::1"))[:4] == bytes((3, 128, 0, 16))
    assert decode_inet(encode_inet("192.0.2.1")) == ipaddress.ip_address("192.0.2.1")
