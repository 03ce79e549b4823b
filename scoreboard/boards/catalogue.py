"""The boards of this deployment, kept in PostgreSQL and followed by every process.

A board has a name, its action types with their maximum increase, its periods
(`daily`, `weekly`, `monthly`; every board also has its all-time ranking), the
season number of the all-time ranking, and its anti-cheat rules per action type.
`global` always exists; while its action types are not set (NULL) they are the
server's settings. Each process holds the catalogue in
memory, reads it afresh every `REFRESH_SECONDS`, at once after its own changes, and
when asked for a board it does not know (at most every `MISS_REFRESH_SECONDS`), so a
board created through another process is usable there at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from msgspec import UnsetType

from scoreboard.core.contract.requests import ActionRules, Signing
from scoreboard.core.errors import BoardLimitReached, BoardNotFound, InvalidRequest
from scoreboard.core.periods import KINDS
from scoreboard.core.settings import Settings
from scoreboard.core.tasks import cancel
from scoreboard.storage.database import db_errors
from scoreboard.storage.keys import BOARD_RE, DEFAULT_BOARD

log = logging.getLogger("scoreboard.boards")

REFRESH_SECONDS = 2.0
_CREATE_LOCK = 0x5C0_B0A2D  # the advisory lock that serializes board creations
MISS_REFRESH_SECONDS = 0.25
MAX_ACTION_TYPES = 50
ACTION_TYPE_CHARS = 50

_COLUMNS = "name, action_types, periods, season, anticheat, signing"
_SELECT = f"SELECT {_COLUMNS} FROM boards ORDER BY name"  # noqa: S608 (constant text)
_RULES = msgspec.json.Decoder(dict[str, ActionRules])
_SIGNING = msgspec.json.Decoder(Signing)


@dataclass(frozen=True)
class BoardConfig:
    name: str
    action_types: dict[str, int]
    periods: tuple[str, ...]  # in the order of `KINDS`
    season: int
    anticheat: dict[str, ActionRules] = field(default_factory=dict)
    signing: Signing | None = None


def validate_name(value: object) -> str:
    if not isinstance(value, str) or not BOARD_RE.match(value):
        raise InvalidRequest(
            "name must be 1-64 characters of a-z, 0-9, '_' and '-'", details={"field": "name"}
        )
    return value


def validate_action_types(value: object, ceiling: int) -> dict[str, int]:
    if not isinstance(value, dict) or not 1 <= len(value) <= MAX_ACTION_TYPES:
        raise InvalidRequest(
            f"action_types must be an object of 1 to {MAX_ACTION_TYPES} action types",
            details={"field": "action_types"},
        )
    maximums = {}
    for name, given in value.items():
        # a JSON number with nothing after the point (3.0) is that whole number
        maximum = int(given) if type(given) is float and given.is_integer() else given
        if not 1 <= len(name) <= ACTION_TYPE_CHARS or not name.isascii() or not name.isprintable():
            raise InvalidRequest(
                f"action type names must be 1-{ACTION_TYPE_CHARS} printable ASCII characters",
                details={"field": "action_types"},
            )
        if type(maximum) is not int or not 1 <= maximum <= ceiling:
            raise InvalidRequest(
                f"each action type's maximum increase must be a whole number from 1 to {ceiling}",
                details={"field": "action_types", "action_type": name},
            )
        maximums[name] = maximum
    return maximums


def validate_rules(
    rules: dict[str, ActionRules], action_types: dict[str, int]
) -> dict[str, ActionRules]:
    """A board's anti-cheat rules: each for one of its action types, with a range of
    levels from the lowest to the highest."""
    for name, rule in rules.items():
        if name not in action_types:
            raise InvalidRequest(
                "anticheat names an action type the board does not have",
                details={"field": "anticheat", "action_type": name},
            )
        if not isinstance(rule.levels, UnsetType) and rule.levels[0] > rule.levels[1]:
            raise InvalidRequest(
                "levels must be [lowest, highest]",
                details={"field": "anticheat", "action_type": name},
            )
    return rules


def validate_periods(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(kind, str) for kind in value):
        raise InvalidRequest(
            "periods must be a list of 'daily', 'weekly' and 'monthly'",
            details={"field": "periods", "allowed": list(KINDS)},
        )
    unknown = sorted(set(value) - set(KINDS))
    if unknown or len(set(value)) != len(value):
        raise InvalidRequest(
            "periods must name each of 'daily', 'weekly' and 'monthly' at most once",
            details={"field": "periods", "allowed": list(KINDS)},
        )
    return tuple(kind for kind in KINDS if kind in value)


def _encoded(rules: dict[str, ActionRules] | None) -> str | None:
    return None if rules is None else msgspec.json.encode(rules).decode()


def _encoded_signing(signing: Signing | None) -> str | None:
    return None if signing is None else msgspec.json.encode(signing).decode()


class BoardCatalog:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._boards: dict[str, BoardConfig] = {DEFAULT_BOARD: self._from_row(None)}
        self._listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._last_miss_refresh = 0.0

    def _from_row(self, row: Any) -> BoardConfig:
        if row is None:
            return BoardConfig(DEFAULT_BOARD, dict(self._settings.action_types), (), 1)
        types = row["action_types"]
        action_types = json.loads(types) if types is not None else dict(self._settings.action_types)
        periods = tuple(kind for kind in KINDS if kind in (row["periods"] or ()))
        rules = _RULES.decode(row["anticheat"]) if row["anticheat"] else {}
        signing = _SIGNING.decode(row["signing"]) if row["signing"] else None
        return BoardConfig(row["name"], action_types, periods, int(row["season"]), rules, signing)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Called after every refresh that found the catalogue changed."""
        self._listeners.append(listener)

    def all(self) -> list[BoardConfig]:
        return list(self._boards.values())

    def get(self, name: str) -> BoardConfig | None:
        return self._boards.get(name)

    async def find(self, name: str) -> BoardConfig:
        """The board, read afresh when this process does not know it yet."""
        board = self._boards.get(name)
        if board is not None:
            return board
        now = time.monotonic()
        if BOARD_RE.match(name) and now - self._last_miss_refresh >= MISS_REFRESH_SECONDS:
            self._last_miss_refresh = now
            await self.refresh()
            board = self._boards.get(name)
        if board is None:
            raise BoardNotFound()
        return board

    async def refresh(self) -> None:
        async with db_errors():
            rows = await self._pool.fetch(_SELECT)
        boards = {row["name"]: self._from_row(row) for row in rows}
        boards.setdefault(DEFAULT_BOARD, self._from_row(None))
        if boards != self._boards:
            self._boards = boards
            for listener in self._listeners:
                listener()

    async def create(
        self,
        name: str,
        action_types: dict[str, int],
        periods: tuple[str, ...],
        rules: dict[str, ActionRules] | None = None,
        signing: Signing | None = None,
    ) -> BoardConfig | None:
        """The new board, or None when one of that name exists; BoardLimitReached when
        `SCOREBOARD_MAX_BOARDS` are there already (the default board counts, stored or
        not). Creations are serialized by a transaction-scoped advisory lock, so the
        limit holds under races."""
        limit = self._settings.max_boards
        async with db_errors(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _CREATE_LOCK)
            others = await conn.fetchval(
                "SELECT count(*) FROM boards WHERE name <> $1", DEFAULT_BOARD
            )
            row = None
            if not await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM boards WHERE name = $1)", name
            ):
                if others + 1 >= limit:
                    raise BoardLimitReached(limit)
                row = await conn.fetchrow(
                    "INSERT INTO boards (name, action_types, periods, anticheat, signing)"  # noqa: S608
                    f" VALUES ($1, $2::jsonb, $3, $4::jsonb, $5::jsonb) RETURNING {_COLUMNS}",
                    name,
                    json.dumps(action_types),
                    list(periods),
                    _encoded(rules),
                    _encoded_signing(signing),
                )
        await self.refresh()
        return None if row is None else self._from_row(row)

    async def update(
        self,
        name: str,
        action_types: dict[str, int] | None,
        periods: tuple[str, ...] | None,
        rules: dict[str, ActionRules] | None = None,
        signing: Signing | UnsetType | None = msgspec.UNSET,
    ) -> BoardConfig:
        """None leaves a field as it is; `signing` is left when UNSET, removed when
        None."""
        async with db_errors():
            row = await self._pool.fetchrow(
                "UPDATE boards SET action_types = coalesce($2::jsonb, action_types),"  # noqa: S608
                " periods = coalesce($3::text[], periods),"
                " anticheat = coalesce($4::jsonb, anticheat),"
                " signing = CASE WHEN $5 THEN $6::jsonb ELSE signing END,"
                f" updated_at = now() WHERE name = $1 RETURNING {_COLUMNS}",
                name,
                None if action_types is None else json.dumps(action_types),
                None if periods is None else list(periods),
                _encoded(rules),
                not isinstance(signing, UnsetType),
                None if isinstance(signing, UnsetType) else _encoded_signing(signing),
            )
        if row is None:
            raise BoardNotFound()
        await self.refresh()
        return self._from_row(row)

    async def set_season(self, name: str, season: int) -> None:
        """The season moves only forward (a reset's own process and its syncer both
        set it)."""
        async with db_errors():
            await self._pool.execute(
                "UPDATE boards SET season = GREATEST(season, $2), updated_at = now()"
                " WHERE name = $1",
                name,
                season,
            )
        await self.refresh()

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("reading the boards failed: %s", exc)

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="board-catalog")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
