"""bcrypt hashing off the event loop on a bounded pool, with a dummy check for unknown
users.

bcrypt is meant to be slow (cost 12: about a quarter of a second of a core), so no
machine hashes every login of a storm. Hashing runs on a pool of its own, sized to
leave the machine's other work room; a hash that cannot start within a short wait, or
that finds the queue full, is refused at once with 503 and `Retry-After` instead of
queueing without bound until every client has given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import bcrypt

from scoreboard.core.errors import NOT_APPLIED, InvalidRequest, ServiceUnavailable
from scoreboard.core.metrics import HASHES_SHED

T = TypeVar("T")
# at most this many wait for a slot; the wait's deadline is what bounds their latency
DEFAULT_QUEUE_LIMIT = 256


def default_hash_workers() -> int:
    """Half the CPUs (at least one): the rest serve everything else."""
    return max(1, (os.cpu_count() or 2) // 2)


MAX_PASSWORD_BYTES = 72
MIN_PASSWORD_CHARS = 8


def validate_password(password: object) -> str:
    """Registration rules: bcrypt reads at most 72 bytes, and we never truncate silently."""
    if not isinstance(password, str):
        raise InvalidRequest("password must be a string", details={"field": "password"})
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidRequest(
            f"password must be at least {MIN_PASSWORD_CHARS} characters",
            details={"field": "password"},
        )
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise InvalidRequest(
            f"password must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8",
            details={"field": "password"},
        )
    if "\x00" in password:
        raise InvalidRequest("password must not contain NUL", details={"field": "password"})
    return password


HASHING_NICENESS = 10


def _yield_to_requests() -> None:
    """Hashing threads run at a lower priority than the event loop's: where they share
    a core with it, the scheduler serves requests first (Linux sets a thread's own
    niceness; elsewhere this does nothing)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


class HashingBusy(ServiceUnavailable):
    default_message = "Too many logins at once; retry in a moment"

    def __init__(self) -> None:
        super().__init__(outcome=NOT_APPLIED)


class PasswordHasher:
    def __init__(
        self,
        rounds: int,
        *,
        workers: int | None = None,
        queue_limit: int | None = None,
        wait_ms: int = 500,
    ) -> None:
        self.rounds = rounds
        self.workers = workers or default_hash_workers()
        self._queue_limit = DEFAULT_QUEUE_LIMIT if queue_limit is None else queue_limit
        self._wait = wait_ms / 1000
        self._executor = ThreadPoolExecutor(
            self.workers, thread_name_prefix="bcrypt", initializer=_yield_to_requests
        )
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
        self._dummy_hash = bcrypt.hashpw(b"dummy password", bcrypt.gensalt(rounds))

    async def _run(self, work: Callable[..., T], *args: bytes) -> T:
        """`work(*args)` on the pool, or HashingBusy when it cannot start in time."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        if self._slots.locked() and self._waiting >= self._queue_limit:
            HASHES_SHED.labels("queue_full").inc()
            raise HashingBusy()
        self._waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self._wait)
        except TimeoutError:
            HASHES_SHED.labels("waited_too_long").inc()
            raise HashingBusy() from None
        finally:
            self._waiting -= 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        finally:
            self._slots.release()

    async def hash(self, password: str) -> str:
        hashed = await self._run(bcrypt.hashpw, password.encode(), bcrypt.gensalt(self.rounds))
        return hashed.decode()

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Costs one bcrypt check whatever the input, so failures all take the same time."""
        encoded = password.encode()
        usable = hashed is not None and len(encoded) <= MAX_PASSWORD_BYTES
        target = hashed.encode() if hashed is not None and usable else self._dummy_hash
        candidate = encoded if usable else encoded[:MAX_PASSWORD_BYTES]
        matched = await self._run(bcrypt.checkpw, candidate, target)
        return usable and matched

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
