"""Registered devices: the device a player signs in from, the sessions opened from it,
and what admins see and do about a device that carries a farm of accounts.

A login may name its device (`"device": {"id"}` or `{"fingerprint"}`, with an
optional Ed25519 `public_key`). The service knows it by a handle, a digest of how the
client names it, which the session's access tokens carry; action tokens are bound to
it, and an update with a token from another device's session is refused (the score
script checks). A public key given with a device's first registration is pinned to
it. Each login from a device counts the accounts that signed in from it within the
anti-cheat window; reaching `SCOREBOARD_ANTICHEAT_DEVICE_PLAYERS` flags the device
(once, audited). The score judge counts the same on each board as players play
(`device_farm`, `device_hopping`; lua/include/anticheat.lua). A blocked device signs
nobody in, and every session opened from it is revoked as it is blocked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from msgspec import UnsetType

from scoreboard.auth.revocations import Revocations
from scoreboard.core import patterns
from scoreboard.core.contract import Device, DeviceInfo, DevicePlayer
from scoreboard.core.errors import DeviceRefused, InvalidRequest, NotFound
from scoreboard.core.periods import iso_instant
from scoreboard.core.settings import Settings
from scoreboard.storage.database import db_errors

MAX_LISTED = 200
HANDLE_RE = patterns.matcher(patterns.DEVICE_HANDLE)
_ID_RE = patterns.matcher(patterns.DEVICE_ID)
_FINGERPRINT_RE = patterns.matcher(patterns.DEVICE_FINGERPRINT)
_PUBLIC_KEY_RE = patterns.matcher(patterns.DEVICE_PUBLIC_KEY)

_UPSERT = """
INSERT INTO devices (id, kind, label, public_key) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET last_seen = now(),
  public_key = coalesce(devices.public_key, EXCLUDED.public_key)
RETURNING public_key, blocked_at IS NOT NULL AS blocked, flagged_at IS NOT NULL AS flagged
"""
_SEEN = """
INSERT INTO device_players (device_id, user_id) VALUES ($1, $2::uuid)
ON CONFLICT (device_id, user_id) DO UPDATE SET last_seen = now()
"""
_PLAYERS = """
SELECT count(*) FROM device_players
WHERE device_id = $1 AND last_seen > now() - make_interval(secs => $2)
"""
_FLAG = "UPDATE devices SET flagged_at = now() WHERE id = $1 AND flagged_at IS NULL RETURNING id"
# the listings' columns: $1 is the anti-cheat window in seconds
_COLUMNS = """
d.id, d.kind, d.label, d.public_key IS NOT NULL AS pinned, d.first_seen, d.flagged_at,
d.blocked_at, d.block_reason,
(SELECT count(*) FROM device_players o
 WHERE o.device_id = d.id AND o.last_seen > now() - make_interval(secs => $1)) AS players
"""
_OF_PLAYER = f"""
SELECT {_COLUMNS}, p.last_seen FROM device_players p JOIN devices d ON d.id = p.device_id
WHERE p.user_id = $2::uuid ORDER BY p.last_seen DESC LIMIT {MAX_LISTED}
"""  # noqa: S608 (constant text)
_FLAGGED = f"""
SELECT {_COLUMNS}, d.last_seen FROM devices d WHERE d.flagged_at IS NOT NULL
ORDER BY d.flagged_at DESC LIMIT {MAX_LISTED}
"""  # noqa: S608 (constant text)
_ONE = f"SELECT {_COLUMNS}, d.last_seen FROM devices d WHERE d.id = $2"  # noqa: S608
_ACCOUNTS = f"""
SELECT p.user_id::text, u.username, p.last_seen FROM device_players p
JOIN users u ON u.id = p.user_id WHERE p.device_id = $1
ORDER BY p.last_seen DESC LIMIT {MAX_LISTED}
"""  # noqa: S608 (constant text)
_BLOCK = """
UPDATE devices SET blocked_at = coalesce(blocked_at, now()), blocked_by = $2::uuid,
  block_reason = $3
WHERE id = $1 RETURNING id
"""
_UNBLOCK = """
UPDATE devices SET blocked_at = NULL, blocked_by = NULL, block_reason = NULL
WHERE id = $1 RETURNING id
"""
_REVOKE_DEVICE_SESSIONS = """
UPDATE refresh_families SET revoked_at = now(), revoked_reason = 'device_blocked'
WHERE device_id = $1 AND revoked_at IS NULL AND expires_at > now()
RETURNING id::text
"""


@dataclass(frozen=True)
class NamedDevice:
    """A device as a login names it, and the service's handle of it."""

    handle: str
    kind: str  # 'id' | 'fingerprint'
    label: str
    public_key: str | None


@dataclass(frozen=True)
class Registration:
    device: NamedDevice
    players: int  # accounts that signed in from it within the window, this one included
    flagged_now: bool  # this login took it to the farm threshold


def handle_of(kind: str, label: str) -> str:
    return hashlib.sha256(f"{kind}:{label}".encode()).hexdigest()[:32]


def named(device: Device) -> NamedDevice:
    """The device a login names: exactly one of `id` and `fingerprint`."""
    has_id = not isinstance(device.id, UnsetType)
    has_fingerprint = not isinstance(device.fingerprint, UnsetType)
    if has_id == has_fingerprint:
        raise InvalidRequest(
            "device needs exactly one of id and fingerprint", details={"field": "device"}
        )
    if not isinstance(device.id, UnsetType):
        kind, label, matcher = "id", device.id, _ID_RE
    else:
        assert not isinstance(device.fingerprint, UnsetType)
        kind, label, matcher = "fingerprint", device.fingerprint, _FINGERPRINT_RE
    if not matcher.match(label):
        raise InvalidRequest(
            "device.id must be 1-100 printable ASCII characters without spaces"
            if kind == "id"
            else "device.fingerprint must be a SHA-256 in lower-case hex",
            details={"field": f"device.{kind}"},
        )
    public_key = None if isinstance(device.public_key, UnsetType) else device.public_key
    if public_key is not None and not _PUBLIC_KEY_RE.match(public_key):
        raise InvalidRequest(
            "device.public_key must be an Ed25519 public key in base64",
            details={"field": "device.public_key"},
        )
    return NamedDevice(handle_of(kind, label), kind, label, public_key)


def parse_handle(raw: str) -> str:
    if not HANDLE_RE.match(raw):
        raise InvalidRequest(
            "device_id must be a device's id as the admin routes give it",
            details={"field": "device_id"},
        )
    return raw


def _maybe_iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso_instant(moment)


def _info(row: asyncpg.Record) -> DeviceInfo:
    return DeviceInfo(
        device_id=row["id"],
        kind=row["kind"],
        label=row["label"],
        public_key_pinned=row["pinned"],
        first_seen=iso_instant(row["first_seen"]),
        last_seen=iso_instant(row["last_seen"]),
        players=row["players"],
        flagged_at=_maybe_iso(row["flagged_at"]),
        blocked_at=_maybe_iso(row["blocked_at"]),
        block_reason=row["block_reason"],
    )


class Devices:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, revocations: Revocations) -> None:
        self._pool = pool
        self._settings = settings
        self._revocations = revocations

    @property
    def _window(self) -> float:
        return float(self._settings.anticheat_device_window_seconds)

    async def register(
        self, conn: asyncpg.Connection, user_id: str, device: NamedDevice
    ) -> Registration:
        """In the login's transaction: the device known (its key pinned when first
        given), this account seen on it; refused (DeviceRefused) when it is blocked or
        its pinned key is another."""
        row = await conn.fetchrow(
            _UPSERT, device.handle, device.kind, device.label, device.public_key
        )
        if row["blocked"]:
            raise DeviceRefused("device_blocked", device.handle, account_id=user_id)
        if row["public_key"] is not None and row["public_key"] != device.public_key:
            raise DeviceRefused("device_key_mismatch", device.handle, account_id=user_id)
        await conn.execute(_SEEN, device.handle, user_id)
        players = await conn.fetchval(_PLAYERS, device.handle, self._window)
        flagged_now = False
        if players >= self._settings.anticheat_device_players and not row["flagged"]:
            flagged_now = await conn.fetchval(_FLAG, device.handle) is not None
        return Registration(device, players, flagged_now)

    async def of_player(self, user_id: str) -> list[DeviceInfo]:
        async with db_errors():
            rows = await self._pool.fetch(_OF_PLAYER, self._window, user_id)
        return [_info(row) for row in rows]

    async def flagged(self) -> list[DeviceInfo]:
        async with db_errors():
            rows = await self._pool.fetch(_FLAGGED, self._window)
        return [_info(row) for row in rows]

    async def one(self, handle: str) -> DeviceInfo:
        """A device with the accounts that signed in from it."""
        async with db_errors():
            row = await self._pool.fetchrow(_ONE, self._window, handle)
            if row is None:
                raise NotFound("No such device")
            accounts = await self._pool.fetch(_ACCOUNTS, handle)
        info = _info(row)
        info.accounts = [
            DevicePlayer(
                user_id=account["user_id"],
                username=account["username"],
                last_seen=iso_instant(account["last_seen"]),
            )
            for account in accounts
        ]
        return info

    async def block(self, handle: str, admin_id: str, reason: str) -> int:
        """Blocked, and every live session opened from it revoked (their access
        tokens and live feeds stop at once); returns how many were."""
        async with db_errors(), self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(_BLOCK, handle, admin_id, reason) is None:
                raise NotFound("No such device")
            rows = await conn.fetch(_REVOKE_DEVICE_SESSIONS, handle)
        for row in rows:
            await self._revocations.revoke(row["id"])
        return len(rows)

    async def unblock(self, handle: str) -> None:
        async with db_errors():
            if await self._pool.fetchval(_UNBLOCK, handle) is None:
                raise NotFound("No such device")
