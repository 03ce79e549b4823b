"""Notices, within a second, that Redis lost a board or that it was rebuilt unheard, and
heals it without a person.

Every process that can rebuild runs one: the server and the syncer. Each round reads
the board's state and its two counted keys in one transaction. A missing state, or a
players count that no longer matches the sorted set and the players hash (a key was
evicted or deleted), means the board is lost: the state is deleted, so no update is
applied to what is left, the process drops its copy of the board, and it rebuilds the
board from PostgreSQL (one process wins the lock; the others see the new build on
their next round). A build other than the one this process holds makes it read the
board afresh, in case the rebuild's announcement was missed. A script that answers
that the board is lost wakes the guard at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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

CHECK_SECONDS = 1.0


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
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stats = GuardStats()
        self.healthy = True
        self._checked = False  # a board missing at the first look is new, not lost

    def poke(self) -> None:
        """Look now (a script said the board is lost or not ready)."""
        self._wake.set()

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

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except ServiceUnavailable as exc:
                log.debug("board check skipped: %s", exc.message)
            except Exception:
                log.exception("board check failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), CHECK_SECONDS)
            self._wake.clear()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"board-guard-{self._board.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
