"""The board the script tests drive, on each Lua backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis

from tests.lua.board_helpers import Board


@pytest_asyncio.fixture
async def board(lua_backend: aioredis.Redis) -> AsyncIterator[Board]:
    """A ready, empty board under a key prefix of the test's own."""
    b = Board(lua_backend)
    await b.make_ready()
    yield b
    await b.cleanup()
