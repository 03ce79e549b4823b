"""One-time action tokens: 256 random bits to the client, only their SHA-256 in Redis."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scoreboard.errors import InvalidRequest
from scoreboard.keys import DEFAULT_BOARD, Keys
from scoreboard.ratelimit import RateDecision
from scoreboard.scripts import Scripts
from scoreboard.settings import Settings

TOKEN_BYTES = 32
SESSION_ID_RE = re.compile(r"^[\x21-\x7e]{1,100}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def validate_session_id(value: object) -> str:
    """1-100 printable ASCII characters, no spaces: it is echoed into events and logs."""
    if not isinstance(value, str) or not SESSION_ID_RE.match(value):
        raise InvalidRequest(
            "session_id must be 1-100 printable ASCII characters without spaces",
            details={"field": "session_id"},
        )
    return value


def validate_action_type(value: object, settings: Settings) -> str:
    if not isinstance(value, str) or value not in settings.action_types:
        raise InvalidRequest(
            "action_type is not one of this server's action types",
            details={"field": "action_type", "allowed": sorted(settings.action_types)},
        )
    return value


def validate_timestamp(value: object) -> None:
    if not isinstance(value, str):
        raise InvalidRequest("timestamp must be an ISO 8601 string", details={"field": "timestamp"})
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(
            "timestamp must be an ISO 8601 string", details={"field": "timestamp"}
        ) from None


@dataclass(frozen=True)
class IssuedToken:
    action_token: str
    expires_in: int
    max_score_increase: int
    rate: RateDecision


class ActionTokens:
    def __init__(self, scripts: Scripts, keys: Keys, settings: Settings) -> None:
        self._scripts = scripts
        self._keys = keys
        self._settings = settings

    async def issue(self, user_id: str, body: dict[str, Any]) -> IssuedToken:
        action_type = validate_action_type(body["action_type"], self._settings)
        session_id = validate_session_id(body["session_id"])
        if "timestamp" in body:
            validate_timestamp(body["timestamp"])
        token = secrets.token_urlsafe(TOKEN_BYTES)
        maximum = self._settings.action_types[action_type]
        rate = await self._scripts.issue_action_token(
            self._keys.board(DEFAULT_BOARD),
            self._settings.rate_limit_action_token,
            user_id=user_id,
            token_hash=token_hash(token),
            session_id=session_id,
            action_type=action_type,
            max_increase=maximum,
            ttl_ms=self._settings.action_token_ttl * 1000,
        )
        return IssuedToken(token, self._settings.action_token_ttl, maximum, rate)
