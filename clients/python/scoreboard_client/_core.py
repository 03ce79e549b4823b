"""What the sync and async clients share: the requests they make, the answers they
read, the session's tokens, and when to retry. The transports live in `sync.py` and
`aio.py`."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

# An access token is refreshed this long before it expires.
REFRESH_MARGIN_SECONDS = 60.0
# How long a score update is sent again while its outcome is unknown (the action token
# lives 300 s by default; past its lifetime a retry can only be refused).
RETRY_FOR_SECONDS = 60.0
# Reconnecting a live feed: the first wait, doubled up to the last.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MOST_SECONDS = 10.0


class ScoreboardError(Exception):
    """An answer in the error envelope: `status`, `code`, `message` and `details`."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @property
    def outcome(self) -> str | None:
        """For a 503: `not_applied` (nothing changed) or `unknown` (it may have been)."""
        value = self.details.get("outcome")
        return value if isinstance(value, str) else None


@dataclass
class Request:
    method: str
    path: str
    body: Any = None
    params: dict[str, Any] | None = None
    auth: bool = False

    def query(self) -> dict[str, Any] | None:
        if self.params is None:
            return None
        return {key: value for key, value in self.params.items() if value is not None}


@dataclass
class Session:
    access_token: str = ""
    refresh_token: str = ""
    user_id: str = ""
    expires_at: float = 0.0
    clock: Any = field(default=time.monotonic)

    def keep(self, pair: dict[str, Any]) -> None:
        self.access_token = pair["access_token"]
        self.refresh_token = pair["refresh_token"]
        self.user_id = pair["user_id"]
        self.expires_at = self.clock() + float(pair["expires_in"])

    def due(self) -> bool:
        """The access token expires soon (or has): refresh before using it."""
        return bool(self.refresh_token) and self.clock() >= self.expires_at - REFRESH_MARGIN_SECONDS

    def forget(self) -> None:
        self.access_token = self.refresh_token = self.user_id = ""
        self.expires_at = 0.0


def path(*parts: str) -> str:
    return "/v1/" + "/".join(quote(part, safe="") for part in parts)


def read(response: httpx.Response) -> Any:
    """The answer's `data`, or ScoreboardError from its error envelope."""
    try:
        envelope = response.json()
    except ValueError:
        raise ScoreboardError(
            response.status_code,
            "INVALID_RESPONSE",
            response.text[:200] or response.reason_phrase,
            {},
        ) from None
    if envelope.get("success") is True:
        return envelope.get("data")
    error = envelope.get("error") or {}
    details = dict(error.get("details") or {})
    if "retry-after" in response.headers:
        details.setdefault("retry_after", response.headers["retry-after"])
    raise ScoreboardError(
        response.status_code,
        str(error.get("code", response.status_code)),
        str(error.get("message", "")),
        details,
    )


def retry_after(error: ScoreboardError, default: float = 1.0) -> float:
    try:
        return max(0.1, float(error.details.get("retry_after", default)))
    except (TypeError, ValueError):
        return default


def worth_sending_again(error: ScoreboardError) -> bool:
    """A score update refused for now (503, or 429 before the token was looked at) is
    sent again as it was: the same token and body, so it counts at most once."""
    return error.status in (429, 503)


def update_body(
    score_increase: int,
    action_type: str | None,
    session_id: str | None,
    action_data: dict[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"score_increase": score_increase}
    if action_type is not None:
        body["action_type"] = action_type
    if session_id is not None:
        body["session_id"] = session_id
    if action_data is not None:
        body["action_data"] = action_data
    return body


class Events:
    """Server-sent events from a stream of lines: yields (event id, data) of each
    `leaderboard_update`."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id = ""
        self.last_id = ""

    def feed(self, line: str) -> tuple[str, Any] | None:
        if line == "":
            event, data, self._event, self._data = self._event, self._data, "", []
            if self._id:
                self.last_id = self._id
            if data and event in ("", "leaderboard_update"):
                return self.last_id, json.loads("\n".join(data))
            return None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None


def feed_params(board: str, period: str) -> dict[str, str]:
    return {"board": board, "period": period}


def backoff(attempt: int) -> float:
    return float(min(RECONNECT_MOST_SECONDS, RECONNECT_FIRST_SECONDS * 2**attempt))
