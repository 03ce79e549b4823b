"""bcrypt hashing off the event loop, with a dummy check for unknown users."""

from __future__ import annotations

import bcrypt
from starlette.concurrency import run_in_threadpool

from scoreboard.errors import InvalidRequest

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


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self._dummy_hash = bcrypt.hashpw(b"dummy password", bcrypt.gensalt(rounds))

    async def hash(self, password: str) -> str:
        hashed = await run_in_threadpool(
            bcrypt.hashpw, password.encode(), bcrypt.gensalt(self.rounds)
        )
        return hashed.decode()

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Costs one bcrypt check whatever the input, so failures all take the same time."""
        encoded = password.encode()
        usable = hashed is not None and len(encoded) <= MAX_PASSWORD_BYTES
        target = hashed.encode() if hashed is not None and usable else self._dummy_hash
        candidate = encoded if usable else encoded[:MAX_PASSWORD_BYTES]
        matched = await run_in_threadpool(bcrypt.checkpw, candidate, target)
        return usable and matched
