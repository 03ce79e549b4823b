"""The security audit trail: every security-relevant outcome becomes an entry of the
board's event stream (lua/record_audit.lua) and reaches PostgreSQL's `audit_log`
through the syncer, like the score events; nothing on a request's path writes to
PostgreSQL for it.

Refusals an attacker can repeat at will (a wrong password, a spent token) name a
subject (event type, user, address, and the digest of a login name that is no
account): per subject and window the first `SCOREBOARD_AUDIT_FLOOD_SAMPLE` are
recorded one by one and the rest only counted; once the window is over the syncer
writes one record per flooding subject with the count and the subject (the user, the
name's digest), under an event id derived from the window and the subject, so
flushing twice records nothing twice.

A login name that is no account is never stored as typed (it may be a password typed
in the wrong box): only a keyed digest, which tells attempts on one name apart from
those on another, and its length.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

from scoreboard.core.errors import ServiceUnavailable
from scoreboard.core.event_ids import new_event_id
from scoreboard.core.settings import Settings
from scoreboard.storage.keys import BoardKeys
from scoreboard.storage.redis_client import RedisClient, as_text, redis_errors
from scoreboard.storage.scripts import Scripts

log = logging.getLogger("scoreboard.audit")

FLOOD_NAMESPACE = uuid.UUID("6c1f0b52-8d1e-4a53-9b8e-3f0c2a7d9e41")
WINDOWS_KEPT = 10  # flood counts outlive their window this many windows
MAX_DETAIL_CHARS = 200

# event types (audit_log.event_type); score events are typed by the syncer
LOGIN_FAILED = "login_failed"
LOGIN_THROTTLED = "login_throttled"
LOGIN_SUSPENDED = "login_suspended"
TOKEN_REFUSED = "action_token_refused"  # noqa: S105 (an event type)
SIGNATURE_REFUSED = "action_signature_refused"  # a game-server signature missing or wrong
REFRESH_REUSE = "refresh_token_reuse"
LOGOUT = "logout"
ADMIN_BAN = "admin_ban"
ADMIN_UNBAN = "admin_unban"
# an operator's change from the command line (scoreboard/auth/operator.py)
ROLE_CHANGED = "role_changed"
PASSWORD_RESET = "password_reset"  # noqa: S105 (an event type)
# one-time passwords (scoreboard/auth/mfa.py)
MFA_ENROLLED = "mfa_enrolled"
MFA_CONFIRMED = "mfa_confirmed"
MFA_REFUSED = "mfa_refused"
MFA_RECOVERY_USED = "mfa_recovery_code_used"
MFA_RESET = "mfa_reset"
# registered devices (scoreboard/auth/devices.py)
LOGIN_DEVICE_REFUSED = "login_device_refused"
DEVICE_FLAGGED = "device_flagged"
DEVICE_BLOCKED = "device_blocked"
DEVICE_UNBLOCKED = "device_unblocked"


NAME_DIGEST = "username_digest"  # the details field of a name that is no account


def _subject(event_type: str, user_id: str | None, ip: str, name_digest: str) -> str:
    return f"{event_type}|{user_id or ''}|{name_digest}|{ip}"


def _clip(value: Any) -> Any:
    return value[:MAX_DETAIL_CHARS] if isinstance(value, str) else value


class AuditTrail:
    def __init__(self, scripts: Scripts, board: BoardKeys, settings: Settings) -> None:
        self._scripts = scripts
        self._board = board
        self._window = settings.audit_flood_window
        self._sample = settings.audit_flood_sample
        self._name_key = (settings.jwt_secret or "").encode()

    def unknown_name(self, name: str) -> dict[str, Any]:
        """What the audit trail keeps of a login name that is no account."""
        digest = hmac.new(self._name_key, name.encode(), hashlib.sha256).hexdigest()[:16]
        return {NAME_DIGEST: digest, "username_length": len(name)}

    async def record(
        self,
        event_type: str,
        *,
        user_id: str | None = None,
        ip: str = "",
        user_agent: str = "",
        result: str = "",
        details: dict[str, Any] | None = None,
        flood: bool = False,
    ) -> bool:
        """Append the event; with `flood`, count it under its subject instead once the
        subject's sample for this window is recorded. Never raises: an audit trail
        that cannot be written is logged, and the request goes on."""
        now = int(time.time())
        start = now - now % self._window
        text = json.dumps({k: _clip(v) for k, v in (details or {}).items()}, ensure_ascii=True)
        try:
            return await self._scripts.record_audit(
                self._board,
                window_start_s=start,
                subject=_subject(event_type, user_id, ip, str((details or {}).get(NAME_DIGEST, "")))
                if flood
                else "",
                sample=self._sample,
                ttl_ms=self._window * WINDOWS_KEPT * 1000,
                event_id=new_event_id(),
                event_type=event_type,
                user_id=user_id,
                ip=ip,
                user_agent=user_agent[:MAX_DETAIL_CHARS],
                result=result,
                details_json=text,
            )
        except ServiceUnavailable as exc:
            log.warning("audit event %s not recorded: %s", event_type, exc)
            return False

    async def flush_floods(self, redis: RedisClient, now_s: float | None = None) -> int:
        """One counted record per subject that went past its sample in each finished
        window still held; returns how many were written. The windows (all in the
        board's slot) are read in one round trip."""
        now = int(time.time() if now_s is None else now_s)
        current = now - now % self._window
        starts = [current - back * self._window for back in range(1, WINDOWS_KEPT + 1)]
        keys = [self._board.audit_floods(start) for start in starts]
        async with redis_errors():
            if not await redis.exists(*keys):  # the usual answer: one command
                return 0
            pipe = redis.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            found = await pipe.execute()
        written = 0
        for start, key, counts in zip(starts, keys, found, strict=True):
            for raw_subject, raw_count in (counts or {}).items():
                subject, attempts = as_text(raw_subject), int(raw_count)
                if attempts <= self._sample:
                    continue
                written += await self._write_count(key, subject, attempts, start)
            if counts:
                async with redis_errors():
                    await redis.delete(key)
        return written

    async def _write_count(self, key: str, subject: str, attempts: int, start: int) -> int:
        event_type, user_id, name_digest, ip = subject.split("|", 3)
        details: dict[str, Any] = {
            "aggregated": True,
            "count": attempts - self._sample,
            "attempts": attempts,
            "window_start": start,
            "window_seconds": self._window,
        }
        if name_digest:
            details[NAME_DIGEST] = name_digest
        await self._scripts.record_audit(
            self._board,
            window_start_s=start,
            subject="",
            sample=self._sample,
            ttl_ms=1,
            event_id=str(uuid.uuid5(FLOOD_NAMESPACE, f"{key}|{subject}")),
            event_type=event_type,
            user_id=user_id or None,
            ip=ip,
            user_agent="",
            result="counted",
            details_json=json.dumps(details),
        )
        return 1
