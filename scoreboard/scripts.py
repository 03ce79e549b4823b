"""Loads every Lua script in `lua/` once and wraps each in a typed async call.

redis-py's AsyncScript computes the SHA once, calls EVALSHA and reloads the source on
NOSCRIPT, so a `SCRIPT FLUSH` on the server costs one extra round trip and nothing else.
Handlers never see raw replies: each wrapper returns a dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.commands.core import AsyncScript

from scoreboard.redis_store import RedisClient, redis_errors
from scoreboard.settings import RateRule


def lua_dir() -> Path:
    """`scoreboard/lua` in an installed wheel, the repository's `lua/` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "lua", here.parent / "lua"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the lua/ script directory is missing from this installation")


def load_sources() -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted(lua_dir().glob("*.lua"))}


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float


class Scripts:
    """Every script registered once against one client; one method per script."""

    def __init__(self, client: RedisClient) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(source) for name, source in load_sources().items()
        }

    async def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        async with redis_errors():
            return await self._scripts[name](keys=keys, args=args)

    async def rate_limit(self, key: str, rule: RateRule) -> RateDecision:
        allowed, remaining, retry_us, reset_us = await self._call(
            "rate_limit", [key], [rule.limit, rule.period * 1_000_000]
        )
        return RateDecision(
            allowed=bool(allowed),
            limit=rule.limit,
            remaining=int(remaining),
            retry_after=int(retry_us) / 1e6,
            reset_after=int(reset_us) / 1e6,
        )
