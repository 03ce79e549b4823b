"""Player accounts in PostgreSQL: validation, registration, lookup."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from scoreboard.auth.passwords import PasswordHasher, validate_password
from scoreboard.core import patterns
from scoreboard.core.errors import Conflict, InvalidRequest
from scoreboard.storage.database import db_errors

USERNAME_RE = patterns.matcher(patterns.USERNAME)
EMAIL_RE = patterns.matcher(patterns.EMAIL)
MAX_EMAIL_CHARS = 100
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}


@dataclass(frozen=True)
class User:
    id: str
    username: str
    email: str
    role: str
    banned: bool
    password_hash: str
    # the encrypted one-time-password secret, when its enrolment is confirmed
    # (scoreboard/auth/mfa.py): read with the account, so a login asks nothing more
    otp_secret: bytes | None = None


@dataclass(frozen=True)
class Account:
    """An account as an operator sees it: no password hash, its ban, its totals."""

    id: str
    username: str
    email: str
    role: str
    banned: bool
    banned_reason: str | None
    created_at: datetime
    scores: tuple[tuple[str, int], ...] = ()  # (board, all-time total), boards with one


_ACCOUNTS = """
SELECT id::text, username, email, role, banned, banned_reason, created_at FROM users
WHERE ($1::text IS NULL OR role = $1) AND ($2::boolean IS NULL OR banned = $2)
ORDER BY created_at DESC, username LIMIT $3
"""
_ACCOUNT_BY_NAME = """
SELECT id::text, username, email, role, banned, banned_reason, created_at FROM users
WHERE username_key = $1
"""
_ACCOUNT_SCORES = (
    "SELECT board, score FROM board_scores WHERE user_id = $1::uuid AND score <> 0 ORDER BY board"
)


def _name_key(username: str) -> str | None:
    """The uniqueness key a lookup by name uses; None for a name no account can have."""
    try:
        return normalize_username(username)[1]
    except InvalidRequest:
        return None


def _account(row: asyncpg.Record, scores: tuple[tuple[str, int], ...] = ()) -> Account:
    return Account(
        row["id"],
        row["username"],
        row["email"],
        row["role"],
        row["banned"],
        row["banned_reason"],
        row["created_at"],
        scores,
    )


def _reject_invisible(field: str, value: str) -> None:
    """Control, format (bidi, zero-width) and unassigned characters, NUL included."""
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in value):
        raise InvalidRequest(
            f"{field} must not contain control or formatting characters",
            details={"field": field},
        )


def normalize_username(raw: object) -> tuple[str, str]:
    """(display name, uniqueness key). NFKC folds look-alikes such as full-width letters."""
    if not isinstance(raw, str):
        raise InvalidRequest("username must be a string", details={"field": "username"})
    _reject_invisible("username", raw)
    name = unicodedata.normalize("NFKC", raw)
    if not USERNAME_RE.match(name):
        raise InvalidRequest(
            "username must be 3-32 characters: ASCII letters, digits, '_', '.' or '-',"
            " starting with a letter or digit",
            details={"field": "username"},
        )
    return name, name.casefold()


def normalize_email(raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidRequest("email must be a string", details={"field": "email"})
    _reject_invisible("email", raw)
    if len(raw) > MAX_EMAIL_CHARS or not EMAIL_RE.match(raw):
        raise InvalidRequest("email is not a valid address", details={"field": "email"})
    return raw.lower()


_INSERT_USER = (
    "INSERT INTO users (username, username_key, email, password_hash, role)"
    " VALUES ($1, $2, $3, $4, $5)"
    " RETURNING id::text, username, email, role, banned, password_hash"
)
_USER_BY_NAME = (
    "SELECT id::text, username, email, role, banned, password_hash,"
    " (SELECT m.secret FROM user_mfa m WHERE m.user_id = users.id"
    "  AND m.enabled_at IS NOT NULL) AS otp_secret"
    " FROM users WHERE username_key = $1"
)
_USER_BY_ID = (
    "SELECT id::text, username, email, role, banned, password_hash FROM users WHERE id = $1::uuid"
)


def _user(row: asyncpg.Record) -> User:
    secret = row.get("otp_secret")
    return User(
        row["id"],
        row["username"],
        row["email"],
        row["role"],
        row["banned"],
        row["password_hash"],
        None if secret is None else bytes(secret),
    )


class Accounts:
    def __init__(self, pool: asyncpg.Pool, hasher: PasswordHasher) -> None:
        self._pool = pool
        self._hasher = hasher

    async def create(
        self, username: object, email: object, password: object, *, role: str = "player"
    ) -> User:
        name, key = normalize_username(username)
        address = normalize_email(email)
        hashed = await self._hasher.hash(validate_password(password))
        try:
            async with db_errors():
                row = await self._pool.fetchrow(
                    _INSERT_USER,
                    name,
                    key,
                    address,
                    hashed,
                    role,
                )
        except asyncpg.UniqueViolationError as exc:
            field = "email" if "email" in (exc.constraint_name or "") else "username"
            raise Conflict(f"{field} is already taken", details={"field": field}) from None
        return _user(row)

    async def by_username(self, username: str) -> User | None:
        key = _name_key(username)
        if key is None:
            return None
        async with db_errors():
            row = await self._pool.fetchrow(_USER_BY_NAME, key)
        return _user(row) if row else None

    async def accounts(
        self, *, role: str | None = None, banned: bool | None = None, limit: int = 100
    ) -> list[Account]:
        """The newest accounts first, of a role and ban state when given."""
        async with db_errors():
            rows = await self._pool.fetch(_ACCOUNTS, role, banned, limit)
        return [_account(row) for row in rows]

    async def account(self, username: str) -> Account | None:
        """One account by its name (as a login matches it), with its totals."""
        key = _name_key(username)
        if key is None:
            return None
        async with db_errors():
            row = await self._pool.fetchrow(_ACCOUNT_BY_NAME, key)
            if row is None:
                return None
            scores = await self._pool.fetch(_ACCOUNT_SCORES, row["id"])
        return _account(row, tuple((score["board"], score["score"]) for score in scores))

    async def by_id(self, user_id: str) -> User | None:
        async with db_errors():
            row = await self._pool.fetchrow(_USER_BY_ID, user_id)
        return _user(row) if row else None
