"""What an operator changes on an account from the command line: its role, its
password. Each change and its audit record are one PostgreSQL transaction, so the record
exists exactly when the change does. These records go straight to `audit_log` rather
than through a board's stream: the command may run where the server's Redis is out of
reach (embedded mode keeps Redis inside the server process)."""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import dataclass

import asyncpg

from scoreboard.auth.accounts import User
from scoreboard.auth.audit import MFA_RESET, PASSWORD_RESET, ROLE_CHANGED
from scoreboard.auth.passwords import PasswordHasher, validate_password
from scoreboard.auth.sessions import REVOKE_USER_SESSIONS
from scoreboard.core.event_ids import new_event_id
from scoreboard.storage.database import db_errors

ROLES = ("player", "admin")

_SET_ROLE = "UPDATE users SET role = $2, updated_at = now() WHERE id = $1::uuid AND role <> $2"
_SET_PASSWORD = "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1::uuid"  # noqa: S105
_RECORD = """
INSERT INTO audit_log (event_id, event_type, user_id, user_agent, validation_result, details)
VALUES ($1::uuid, $2, $3::uuid, $4, $5, $6::jsonb)
"""


@dataclass(frozen=True)
class Operator:
    """Who acts from the command line (the machine's user and host) and with what."""

    name: str
    command: str

    @classmethod
    def here(cls, command: str) -> Operator:
        return cls(f"{getpass.getuser()}@{socket.gethostname()}", f"scoreboard {command}")


async def _record(
    connection: asyncpg.Connection,
    event_type: str,
    user: User,
    result: str,
    operator: Operator,
    details: dict[str, object],
) -> None:
    await connection.execute(
        _RECORD,
        new_event_id(),
        event_type,
        user.id,
        operator.command,
        result,
        json.dumps({"operator": operator.name, **details}),
    )


async def set_role(pool: asyncpg.Pool, user: User, role: str, operator: Operator) -> bool:
    """The account's role becomes `role`; False when it already was (nothing recorded).
    Admin routes ask PostgreSQL on every call, so a demotion takes them away at once; a
    promotion shows in the tokens of the account's next login."""
    assert role in ROLES
    async with db_errors(), pool.acquire() as connection, connection.transaction():
        changed = await connection.execute(_SET_ROLE, user.id, role)
        if changed == "UPDATE 0":
            return False
        await _record(
            connection, ROLE_CHANGED, user, role, operator, {"from": user.role, "to": role}
        )
    return True


async def reset_password(
    pool: asyncpg.Pool, hasher: PasswordHasher, user: User, password: str, operator: Operator
) -> list[str]:
    """A new password (the registration's rules), and every live session of the account
    ended; returns the ended sessions' ids, for the caller to mark revoked in Redis."""
    hashed = await hasher.hash(validate_password(password))
    async with db_errors(), pool.acquire() as connection, connection.transaction():
        await connection.execute(_SET_PASSWORD, user.id, hashed)
        rows = await connection.fetch(REVOKE_USER_SESSIONS, user.id, "password_reset")
        await _record(
            connection, PASSWORD_RESET, user, "reset", operator, {"sessions_revoked": len(rows)}
        )
    return [row["id"] for row in rows]


async def reset_mfa(pool: asyncpg.Pool, user: User, operator: Operator) -> bool:
    """The account's one-time passwords off (secret and recovery codes gone: it enrols
    afresh); False when it had none (nothing recorded)."""
    async with db_errors(), pool.acquire() as connection, connection.transaction():
        await connection.execute("DELETE FROM mfa_recovery_codes WHERE user_id = $1::uuid", user.id)
        gone = await connection.fetchval(
            "DELETE FROM user_mfa WHERE user_id = $1::uuid RETURNING user_id", user.id
        )
        if gone is None:
            return False
        await _record(connection, MFA_RESET, user, "reset", operator, {})
    return True
