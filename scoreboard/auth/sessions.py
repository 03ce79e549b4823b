"""Login sessions: token pairs, refresh rotation with reuse detection, revocation.

Each login opens a refresh *family* in PostgreSQL. A refresh spends the presented
token (an UPDATE that only one transaction can win) and issues the next one in the
same family; presenting a spent token revokes the family. Revoking a family also marks
it for the access tokens' lifetime (see revocations.py), so its access tokens stop
working at once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import asyncpg

from scoreboard.auth.accounts import Accounts, User, normalize_username
from scoreboard.auth.devices import Devices, NamedDevice, Registration
from scoreboard.auth.mfa import OneTimePasswords
from scoreboard.auth.passwords import PasswordHasher
from scoreboard.auth.revocations import Revocations
from scoreboard.auth.tokens import AccessClaims, TokenCodec
from scoreboard.core.contract import TokenPair
from scoreboard.core.errors import (
    AccountSuspended,
    InvalidCredentials,
    InvalidRequest,
    InvalidToken,
    RefreshTokenRefused,
)
from scoreboard.core.ratelimit import RateDecision, RateLimiter, rate_headers
from scoreboard.core.settings import Settings
from scoreboard.storage.database import db_errors
from scoreboard.storage.keys import Keys

_SPEND_REFRESH = """
UPDATE refresh_tokens t SET used_at = now()
FROM refresh_families f JOIN users u ON u.id = f.user_id
WHERE t.jti = $1::uuid AND f.id = $2::uuid AND t.family_id = f.id
  AND t.used_at IS NULL AND f.revoked_at IS NULL AND f.expires_at > now() AND NOT u.banned
RETURNING u.id::text AS user_id, u.username, u.role, f.device_id,
  extract(epoch FROM f.expires_at)::bigint AS family_exp
"""


# Every live session of one player, revoked in PostgreSQL; returns their ids (to be
# marked revoked in Redis too, for the access tokens they issued).
REVOKE_USER_SESSIONS = (
    "UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2"
    " WHERE user_id = $1::uuid AND revoked_at IS NULL AND expires_at > now()"
    " RETURNING id::text"
)


@dataclass(frozen=True)
class _Principal:
    """Who a token pair is issued to."""

    id: str
    username: str
    role: str
    device: str  # '' = the login named no device


@dataclass(frozen=True)
class LoggedIn:
    pair: TokenPair
    rate: RateDecision  # the tighter of the two login limits' state
    otp_passed: str  # how the one-time password passed ('' for an account without one)
    device: Registration | None  # the device the login named


class Sessions:
    def __init__(
        self,
        *,
        settings: Settings,
        pool: asyncpg.Pool,
        revocations: Revocations,
        keys: Keys,
        codec: TokenCodec,
        hasher: PasswordHasher,
        accounts: Accounts,
        limiter: RateLimiter,
        otp: OneTimePasswords,
        devices: Devices,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._revocations = revocations
        self._keys = keys
        self._codec = codec
        self._hasher = hasher
        self._accounts = accounts
        self._limiter = limiter
        self._otp = otp
        self._devices = devices

    async def login(
        self,
        username: object,
        password: object,
        ip: str,
        otp: str | None = None,
        device: NamedDevice | None = None,
    ) -> LoggedIn:
        """A new session, opened from `device` when one is named. With one-time
        passwords on, `otp` must hold a code (MfaRequired, after the password matched);
        a blocked device, or one named with another key than its pinned one, is
        refused (DeviceRefused)."""
        if not isinstance(username, str) or not isinstance(password, str):
            raise InvalidRequest("username and password must be strings")
        decision = await self._throttle_login(username, ip)
        user = await self._accounts.by_username(username)
        matched = await self._hasher.verify(password, user.password_hash if user else None)
        if user is None or not matched:
            account_id = user.id if user else None
            raise InvalidCredentials(account_id=account_id, headers=rate_headers(decision))
        if user.banned:
            raise AccountSuspended(user.id)
        passed = await self._otp.check_login(user, otp)
        if device is None and self._settings.require_device and user.role != "admin":
            raise InvalidRequest(
                "This server needs the device a player signs in from (device)",
                details={"field": "device", "reason": "device_required"},
            )
        pair, registration = await self._open_family(user, device)
        return LoggedIn(pair, decision, passed, registration)

    async def _throttle_login(self, username: str, ip: str) -> RateDecision:
        rule = self._settings.rate_limit_login
        try:
            subject = normalize_username(username)[1]
        except InvalidRequest:
            subject = username
        by_ip = await self._limiter.hit(self._keys.auth_rate_limit("login_ip", ip), rule)
        by_name = await self._limiter.hit(self._keys.auth_rate_limit("login_user", subject), rule)
        return min(by_ip, by_name, key=lambda decision: decision.remaining)

    async def _open_family(
        self, user: User, device: NamedDevice | None
    ) -> tuple[TokenPair, Registration | None]:
        now = int(time.time())
        jti = str(uuid.uuid4())
        registration = None
        async with db_errors(), self._pool.acquire() as conn, conn.transaction():
            if device is not None:
                registration = await self._devices.register(conn, user.id, device)
            family = await conn.fetchrow(
                "INSERT INTO refresh_families (user_id, expires_at, device_id)"
                " VALUES ($1::uuid, now() + make_interval(secs => $2), $3)"
                " RETURNING id::text, extract(epoch FROM expires_at)::bigint AS exp",
                user.id,
                self._settings.refresh_token_ttl,
                None if device is None else device.handle,
            )
            await conn.execute(
                "INSERT INTO refresh_tokens (jti, family_id) VALUES ($1::uuid, $2::uuid)",
                jti,
                family["id"],
            )
        handle = "" if device is None else device.handle
        principal = _Principal(user.id, user.username, user.role, handle)
        return self._pair(principal, family["id"], jti, now, family["exp"]), registration

    def _pair(
        self, user: _Principal, family_id: str, jti: str, now: int, family_exp: int
    ) -> TokenPair:
        refresh_exp = min(now + self._settings.refresh_token_ttl, family_exp)
        return TokenPair(
            access_token=self._codec.issue_access(
                user.id, user.username, family_id, user.role, now, user.device
            ),
            refresh_token=self._codec.issue_refresh(user.id, family_id, jti, now, refresh_exp),
            user_id=user.id,
            expires_in=self._settings.access_token_ttl,
        )

    async def refresh(self, token: object) -> TokenPair:
        if not isinstance(token, str):
            raise InvalidRequest("refresh_token must be a string")
        claims = self._codec.verify_refresh(token)
        next_jti = str(uuid.uuid4())
        async with db_errors(), self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_SPEND_REFRESH, claims.jti, claims.session_id)
            if row is not None:
                await conn.execute(
                    "INSERT INTO refresh_tokens (jti, family_id) VALUES ($1::uuid, $2::uuid)",
                    next_jti,
                    claims.session_id,
                )
        if row is None:
            await self.revoke(claims.session_id, "reuse")
            raise RefreshTokenRefused(claims.user_id, claims.session_id)
        principal = _Principal(row["user_id"], row["username"], row["role"], row["device_id"] or "")
        return self._pair(
            principal, claims.session_id, next_jti, int(time.time()), row["family_exp"]
        )

    async def revoke(self, session_id: str, reason: str) -> None:
        async with db_errors():
            await self._pool.execute(
                "UPDATE refresh_families SET revoked_at = now(), revoked_reason = $2"
                " WHERE id = $1::uuid AND revoked_at IS NULL",
                session_id,
                reason,
            )
        await self._revocations.revoke(session_id)

    async def revoke_all(self, user_id: str, reason: str) -> int:
        """Every live session of the player (a ban): their refresh tokens stop at once,
        their access tokens and open live feeds with them."""
        async with db_errors():
            rows = await self._pool.fetch(REVOKE_USER_SESSIONS, user_id, reason)
        for row in rows:
            await self._revocations.revoke(row["id"])
        return len(rows)

    async def is_revoked(self, claims: AccessClaims) -> bool:
        return await self._revocations.is_revoked(claims.session_id)

    async def authenticate(self, token: str) -> AccessClaims:
        claims = self._codec.verify_access(token)
        if await self._revocations.is_revoked(claims.session_id):
            raise InvalidToken()
        return claims
