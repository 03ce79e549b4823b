"""Notices, within a second, that Redis lost a board or that it was rebuilt unheard, and
heals it without a person.

Every process that can rebuild runs one: the server and the syncer. Each round reads
the board's state and its two counted keys in one transaction. A missing state, or a
players count that no longer matches the sorted set and the players hash (a key was
evicted or deleted), means the board is lost: the state is deleted, so no update is
applied to what is left, the process drops its copy of the board, and it rebuilds the
board from PostgreSQL (one process wins the lock; the others see the new build on
their next round). A build other than the one this process holds makes it read the
board afresh, in case the rebuild's announcement was missed.

A process holds a guard per board, and one task runs them all (`GuardRounds`): the
boards the process follows live every second, the others in turn, at most
`VISITS_PER_SECOND` checks a second in all, so that ten thousand boards cost no more
than a hundred. A script that answers that the board is lost pokes its guard, which
is checked at once, whoever's turn it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from scoreboard.boards.rebuild import REAL_CLOCK, PeriodClock, ensure_board
from scoreboard.core.errors import ServiceUnavailable
from scoreboard.core.tasks import cancel
from scoreboard.storage.keys import BoardKeys
from scoreboard.storage.redis_client import RedisClient
from scoreboard.storage.scripts import Scripts

log = logging.getLogger("scoreboard.guard")

CHECK_SECONDS = 1.0  # a round: every followed board, and the next boards in turn
VISITS_PER_SECOND = 100  # checks a round, all boards together (poked ones come on top)


class BoardFollower(Protocol):
    """What a process holds of the board and must drop when it changes."""

    @property
    def epoch(self) -> str | None:
        """The build it holds a copy of (None: no copy)."""
        ...

    def board_changed(self) -> None: ...


@dataclass
class GuardStats:
    lost: int = 0  # times this process found the board lost
    rebuilt: int = 0  # rebuilds this process ran


class BoardGuard:
    def __init__(
        self,
        redis: RedisClient,
        pool: asyncpg.Pool,
        scripts: Scripts,
        board: BoardKeys,
        follower: BoardFollower | None = None,
        clock: PeriodClock = REAL_CLOCK,
    ) -> None:
        self._redis = redis
        self._pool = pool
        self._scripts = scripts
        self._board = board
        self._follower = follower
        self._clock = clock
        self.on_poke: Callable[[], None] | None = None
        self.paused = False  # left out of the rounds (a test that heals by hand)
        self.stats = GuardStats()
        self.healthy = True
        self._checked = False  # a board missing at the first look is new, not lost

    @property
    def name(self) -> str:
        return self._board.name

    @property
    def followed(self) -> bool:
        """Whether the process holds a copy of the board (checked every round)."""
        return self._follower is not None

    def follow(self, follower: BoardFollower | None) -> None:
        """Start (or, with None, stop) telling `follower` when the board changes."""
        self._follower = follower

    def poke(self) -> None:
        """Look now (a script said the board is lost or not ready)."""
        if self.on_poke is not None:
            self.on_poke()

    def pause(self) -> None:
        self.paused = True

    async def check(self) -> str:
        """One round: 'ok', or what `ensure_board` did about a lost board."""
        epoch = await self._state()
        if epoch is not None:
            self._checked = self.healthy = True
            follower = self._follower
            if follower is not None and follower.epoch not in (None, epoch):
                log.info("board %s is a new build (%s); reading it afresh", self._board.name, epoch)
                follower.board_changed()
            return "ok"
        if not self._checked:
            log.info("board %s is not in Redis; building it from PostgreSQL", self._board.name)
        elif self.healthy:
            self.stats.lost += 1
            log.warning("board %s is lost from Redis; rebuilding it", self._board.name)
        self._checked = True
        self.healthy = False
        if self._follower is not None:
            self._follower.board_changed()
        outcome = await ensure_board(
            self._redis, self._pool, self._scripts, self._board, self._clock
        )
        if outcome in ("rebuilt", "created"):
            self.stats.rebuilt += 1
        if outcome != "busy":
            self.healthy = True
        return outcome

    async def _state(self) -> str | None:
        """The board's epoch, or None when it is lost (its state is deleted then)."""
        checked = await self._scripts.check_board(self._board)
        if checked.lost_counts is not None:
            counted, hashed, ranked = checked.lost_counts
            log.error(
                "board %s is damaged: its state counts %s players, the players hash %s,"
                " the sorted set %s",
                self._board.name,
                counted,
                hashed,
                ranked,
            )
        return checked.epoch

    async def run_check(self) -> None:
        """One round, its failure logged rather than raised."""
        try:
            await self.check()
        except asyncio.CancelledError:
            raise
        except ServiceUnavailable as exc:
            log.debug("board %s: check skipped: %s", self.name, exc.message)
        except Exception:
            log.exception("board %s: check failed", self.name)


class GuardRounds:
    """The guards of every board a process holds, run from one task."""

    def __init__(self) -> None:
        self._guards: dict[str, BoardGuard] = {}
        self._poked: set[str] = set()
        self._wake = asyncio.Event()
        self._cursor = 0
        self._task: asyncio.Task[None] | None = None

    def add(self, guard: BoardGuard) -> None:
        name = guard.name
        self._guards[name] = guard
        guard.on_poke = lambda: self._poke(name)

    def _poke(self, name: str) -> None:
        self._poked.add(name)
        self._wake.set()

    def _due(self) -> list[BoardGuard]:
        """This round's guards: the followed boards, then the next of the others."""
        guards = [guard for guard in self._guards.values() if not guard.paused]
        followed = [guard for guard in guards if guard.followed]
        others = [guard for guard in guards if not guard.followed]
        room = max(0, VISITS_PER_SECOND - len(followed))
        if len(others) <= room:
            return followed + others
        start = self._cursor % len(others)
        self._cursor = start + room
        return followed + (others[start:] + others[:start])[:room]

    async def _check_poked(self) -> None:
        self._wake.clear()
        while self._poked:
            guard = self._guards.get(self._poked.pop())
            if guard is not None and not guard.paused:
                await guard.run_check()

    async def _rest(self, seconds: float) -> None:
        """Wait out the round, checking poked boards as they come."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)
            await self._check_poked()

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            for guard in self._due():
                await self._check_poked()
                await guard.run_check()
            await self._rest(CHECK_SECONDS - (time.monotonic() - started))

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="board-guards")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
