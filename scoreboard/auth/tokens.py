"""Access and refresh JWTs: HS256 pinned, every claim required, kinds kept apart.

The two kinds differ in secret, `aud` and `typ`, so neither is ever accepted as the
other. The algorithm list is fixed here and never read from a token's header.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from scoreboard.core import patterns
from scoreboard.core.errors import InvalidToken

ALGORITHM = "HS256"
ISSUER = "scoreboard"
ACCESS_AUDIENCE = "scoreboard:access"
REFRESH_AUDIENCE = "scoreboard:refresh"
ACCESS_TYP = "access"
REFRESH_TYP = "refresh"
LEEWAY_SECONDS = 30
VERIFIED_CACHE_SIZE = 10_000
_REQUIRED = ["sub", "exp", "iat", "iss", "aud", "jti", "typ", "sid"]
_DEVICE_RE = patterns.matcher(patterns.DEVICE_HANDLE)


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    username: str
    session_id: str
    role: str
    jti: str
    expires_at: int
    device: str = ""  # the device the session was opened from ('' = none named)


@dataclass(frozen=True)
class RefreshClaims:
    user_id: str
    session_id: str
    jti: str
    expires_at: int


class TokenCodec:
    def __init__(self, access_secret: str, refresh_secret: str, access_ttl: int) -> None:
        self._access_secret = access_secret
        self._refresh_secret = refresh_secret
        self.access_ttl = access_ttl
        self._verified: dict[str, AccessClaims] = {}

    def issue_access(
        self,
        user_id: str,
        username: str,
        session_id: str,
        role: str,
        now: int,
        device: str = "",
    ) -> str:
        claims = _base_claims(user_id, session_id, str(uuid.uuid4()), now, now + self.access_ttl)
        claims.update(aud=ACCESS_AUDIENCE, typ=ACCESS_TYP, role=role, name=username)
        if device:
            claims["dev"] = device
        return jwt.encode(claims, self._access_secret, algorithm=ALGORITHM)

    def issue_refresh(
        self, user_id: str, session_id: str, jti: str, now: int, expires_at: int
    ) -> str:
        claims = _base_claims(user_id, session_id, jti, now, expires_at)
        claims.update(aud=REFRESH_AUDIENCE, typ=REFRESH_TYP)
        return jwt.encode(claims, self._refresh_secret, algorithm=ALGORITHM)

    def verify_access(self, token: str) -> AccessClaims:
        """Verified claims; a token verified before is found by its exact string and
        only its expiry is checked again."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at + LEEWAY_SECONDS > time.time():
                return cached
            del self._verified[token]
        claims = self._verify_access(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = claims
        return claims

    def _verify_access(self, token: str) -> AccessClaims:
        claims = _decode(token, self._access_secret, ACCESS_AUDIENCE, ACCESS_TYP)
        role, name, device = claims.get("role"), claims.get("name"), claims.get("dev", "")
        if role not in ("player", "admin") or not isinstance(name, str):
            raise InvalidToken()
        if not isinstance(device, str) or (device and not _DEVICE_RE.match(device)):
            raise InvalidToken()
        return AccessClaims(
            claims["sub"], name, claims["sid"], role, claims["jti"], claims["exp"], device
        )

    def verify_refresh(self, token: str) -> RefreshClaims:
        claims = _decode(token, self._refresh_secret, REFRESH_AUDIENCE, REFRESH_TYP)
        _require_uuid(claims["jti"])
        return RefreshClaims(claims["sub"], claims["sid"], claims["jti"], claims["exp"])


def _base_claims(
    user_id: str, session_id: str, jti: str, now: int, expires_at: int
) -> dict[str, Any]:
    return {
        "sub": user_id,
        "sid": session_id,
        "jti": jti,
        "iss": ISSUER,
        "iat": now,
        "exp": expires_at,
    }


def _decode(token: str, secret: str, audience: str, typ: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": _REQUIRED},
        )
    except jwt.PyJWTError:
        raise InvalidToken() from None
    if claims.get("typ") != typ:
        raise InvalidToken()
    _require_uuid(claims["sub"])
    _require_uuid(claims["sid"])
    return claims


def _require_uuid(value: object) -> None:
    try:
        uuid.UUID(str(value))
    except ValueError:
        raise InvalidToken() from None
