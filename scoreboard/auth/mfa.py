"""One-time passwords (TOTP, RFC 6238: 30-second steps, 6 digits) for accounts, which
admins must have while `SCOREBOARD_ADMIN_MFA` is `required`.

An enrolment makes a secret (kept encrypted with AES-GCM under a key from the
environment) and ten recovery codes (kept as SHA-256 digests; each is 50 random bits,
so a fast digest is enough); a code confirms it. From then on the account's login needs
`otp`: a code of the current step or the one either side, each step's code accepted
once, or an unused recovery code. Codes tried are rate-limited per account.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass

import asyncpg
import pyotp
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from scoreboard.auth.accounts import User
from scoreboard.core.errors import Conflict, InvalidRequest, MfaRequired
from scoreboard.core.ratelimit import RateLimiter
from scoreboard.core.settings import Settings
from scoreboard.storage.database import db_errors
from scoreboard.storage.keys import Keys

ISSUER = "scoreboard"
STEP_SECONDS = 30
DRIFT_STEPS = 1  # a code of the step before or after is accepted too
RECOVERY_CODES = 10
NONCE_BYTES = 12

_ENROLL = """
INSERT INTO user_mfa (user_id, secret) VALUES ($1::uuid, $2)
ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, last_step = 0, created_at = now()
WHERE user_mfa.enabled_at IS NULL
RETURNING user_id
"""
_SPEND_STEP = """
UPDATE user_mfa SET last_step = $2, enabled_at = coalesce(enabled_at, now())
WHERE user_id = $1::uuid AND last_step < $2 AND ($3 OR enabled_at IS NOT NULL)
RETURNING user_id
"""
_SPEND_RECOVERY = """
UPDATE mfa_recovery_codes SET used_at = now()
WHERE user_id = $1::uuid AND code_hash = $2 AND used_at IS NULL
RETURNING user_id
"""


@dataclass(frozen=True)
class Enrolment:
    secret: str  # base32, for authenticator apps that take it typed in
    uri: str  # otpauth://totp/...
    recovery_codes: list[str]


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()


def recovery_code() -> str:
    raw = secrets.token_hex(5)
    return f"{raw[:5]}-{raw[5:]}"


class SecretBox:
    """AES-GCM under a key derived from `SCOREBOARD_MFA_KEY` (else `JWT_SECRET`)."""

    def __init__(self, settings: Settings) -> None:
        material = settings.mfa_key or f"mfa:{settings.jwt_secret or ''}"
        self._aead = AESGCM(hashlib.sha256(material.encode()).digest())

    def seal(self, plain: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, b"totp")

    def open(self, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], b"totp")


class OneTimePasswords:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        limiter: RateLimiter,
        keys: Keys,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._limiter = limiter
        self._keys = keys
        self._box = SecretBox(settings)

    async def enroll(self, user_id: str, username: str) -> Enrolment:
        """A new secret and recovery codes; the enrolment counts once confirmed. An
        enrolment already confirmed is reset by an operator only."""
        secret = pyotp.random_base32()
        codes = [recovery_code() for _ in range(RECOVERY_CODES)]
        async with db_errors(), self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(_ENROLL, user_id, self._box.seal(secret.encode())) is None:
                raise Conflict(
                    "One-time passwords are on for this account already; an operator resets"
                    " them with `scoreboard users reset-mfa`"
                )
            await conn.execute("DELETE FROM mfa_recovery_codes WHERE user_id = $1::uuid", user_id)
            await conn.executemany(
                "INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1::uuid, $2)",
                [(user_id, _digest(code)) for code in codes],
            )
        uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)
        return Enrolment(secret, uri, codes)

    async def confirm(self, user_id: str, code: str, now: float | None = None) -> None:
        """Turn the enrolment on with a current code."""
        secret = await self._pending_secret(user_id)
        if secret is None:
            raise InvalidRequest("Enrol first: POST /auth/mfa/enroll", details={"field": "code"})
        await self._throttle(user_id)
        step = self._matching_step(secret, code, now)
        if step is None or not await self._spend_step(user_id, step, confirming=True):
            raise InvalidRequest("That code does not match", details={"field": "code"})

    async def check_login(self, user: User, otp: str | None, now: float | None = None) -> str:
        """'' when the account has no one-time password; else 'code' or 'recovery' (how
        it passed), or MfaRequired with `details.reason`."""
        if user.otp_secret is None:
            return ""
        user_id = user.id
        secret = self._box.open(user.otp_secret).decode()
        if not otp:
            raise MfaRequired(details={"reason": "missing"}, account_id=user_id)
        await self._throttle(user_id)
        step = self._matching_step(secret, otp, now)
        if step is not None:
            if await self._spend_step(user_id, step, confirming=False):
                return "code"
            raise MfaRequired(
                "That code was used already", details={"reason": "reused"}, account_id=user_id
            )
        async with db_errors():
            if await self._pool.fetchval(_SPEND_RECOVERY, user_id, _digest(otp)) is not None:
                return "recovery"
        raise MfaRequired(
            "That code does not match", details={"reason": "invalid"}, account_id=user_id
        )

    async def reset(self, user_id: str) -> bool:
        """Off, secret and recovery codes gone; whether there was anything."""
        async with db_errors(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM mfa_recovery_codes WHERE user_id = $1::uuid", user_id)
            gone = await conn.fetchval(
                "DELETE FROM user_mfa WHERE user_id = $1::uuid RETURNING user_id", user_id
            )
        return gone is not None

    async def _pending_secret(self, user_id: str) -> str | None:
        """The secret of an enrolment not confirmed yet."""
        async with db_errors():
            sealed = await self._pool.fetchval(
                "SELECT secret FROM user_mfa WHERE user_id = $1::uuid AND enabled_at IS NULL",
                user_id,
            )
        return None if sealed is None else self._box.open(bytes(sealed)).decode()

    async def _throttle(self, user_id: str) -> None:
        await self._limiter.hit(
            self._keys.auth_rate_limit("mfa", user_id), self._settings.rate_limit_mfa
        )

    @staticmethod
    def _matching_step(secret: str, code: str, now: float | None) -> int | None:
        code = code.strip()
        if len(code) != 6 or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret)
        current = int((time.time() if now is None else now) // STEP_SECONDS)
        for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
            if secrets.compare_digest(totp.at(step * STEP_SECONDS), code):
                return step
        return None

    async def _spend_step(self, user_id: str, step: int, *, confirming: bool) -> bool:
        async with db_errors():
            return await self._pool.fetchval(_SPEND_STEP, user_id, step, confirming) is not None
