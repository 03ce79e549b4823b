"""Why sync work is paused, said once per change of state rather than once per retry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from scoreboard.core.errors import DatabaseUnavailable, ServiceUnavailable
from scoreboard.storage.database import db_errors

log = logging.getLogger("scoreboard.sync")

POSTGRES_PROBE_SECONDS = 0.25  # how often an outage of PostgreSQL is probed


class Pause:
    """`reason` is None while work goes on; `since_ms` is when the pause began."""

    def __init__(self, subject: str) -> None:
        self.subject = subject  # how log lines name what is paused
        self.reason: str | None = None
        self.since_ms: int | None = None

    def note(self, exc: BaseException) -> None:
        """A failure: logged when it starts a pause or changes its reason."""
        if isinstance(exc, DatabaseUnavailable):
            reason = "waiting for PostgreSQL"
        elif isinstance(exc, ServiceUnavailable):
            reason = f"paused: {exc.message}"
        else:
            reason = f"paused: {exc!r}"
        if reason == self.reason:
            return
        if self.reason is None:
            self.since_ms = int(time.time() * 1000)
        self.reason = reason
        if isinstance(exc, ServiceUnavailable):
            log.warning("%s %s; retrying", self.subject, reason)
        else:
            log.error("%s failed; retrying", self.subject, exc_info=exc)

    def clear(self) -> None:
        """Work went through: logged when it ends a pause."""
        if self.reason is None:
            return
        paused_s = time.time() - (self.since_ms or 0) / 1000
        log.info("%s resumed after %.1fs", self.subject, paused_s)
        self.reason = self.since_ms = None


async def until_postgres_answers(
    pool: asyncpg.Pool, stopping: asyncio.Event, meanwhile: Callable[[], Awaitable[None]]
) -> bool:
    """Ask PostgreSQL every POSTGRES_PROBE_SECONDS until it answers (or `stopping` is
    set), running `meanwhile` (a health record saying so) before each try; False if it
    answered at once."""
    waited = False
    while not stopping.is_set():
        with contextlib.suppress(ServiceUnavailable):
            await meanwhile()
        try:
            async with db_errors():
                await pool.fetchval("SELECT 1", timeout=POSTGRES_PROBE_SECONDS * 4)
            return waited
        except ServiceUnavailable:
            waited = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), POSTGRES_PROBE_SECONDS)
    return waited
