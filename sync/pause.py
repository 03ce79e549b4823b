"""Why sync work is paused, said once per change of state rather than once per retry."""

from __future__ import annotations

import logging
import time

from scoreboard.errors import DatabaseUnavailable, ServiceUnavailable

log = logging.getLogger("scoreboard.sync")


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
