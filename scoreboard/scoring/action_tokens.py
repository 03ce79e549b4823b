"""One-time action tokens: 256 random bits to the client, only their SHA-256 in Redis.

A token starts with its board's name and a '.' (`speedrun.<random>`): the update that
spends it names no board, the token does, and the board's name is covered by the
token's hash like the rest of it. (A token without a board's name, as issued before
every token carried one, is the default board's.)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from msgspec import UnsetType

from scoreboard.boards.catalogue import BoardCatalog, BoardConfig
from scoreboard.core import patterns
from scoreboard.core.contract import ActionTokenRequest
from scoreboard.core.errors import BoardNotFound, InvalidRequest
from scoreboard.core.ratelimit import RateDecision
from scoreboard.core.settings import Settings
from scoreboard.storage.keys import BOARD_RE, DEFAULT_BOARD, Keys
from scoreboard.storage.scripts import Scripts

TOKEN_BYTES = 32
SESSION_ID_RE = patterns.matcher(patterns.SESSION_ID)


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


def validate_action_type(value: object, action_types: dict[str, int]) -> str:
    if not isinstance(value, str) or value not in action_types:
        raise InvalidRequest(
            "action_type is not one of this board's action types",
            details={"field": "action_type", "allowed": sorted(action_types)},
        )
    return value


def token_board(token: str) -> str:
    """The board a token was issued for (its prefix; none: the default board)."""
    name, dot, _ = token.partition(".")
    return name if dot and BOARD_RE.match(name) else DEFAULT_BOARD


def new_token(board: str) -> str:
    return f"{board}.{secrets.token_urlsafe(TOKEN_BYTES)}"


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
    board: str = DEFAULT_BOARD


class ActionTokens:
    def __init__(
        self, scripts: Scripts, keys: Keys, settings: Settings, catalog: BoardCatalog
    ) -> None:
        self._scripts = scripts
        self._keys = keys
        self._settings = settings
        self._catalog = catalog

    async def _board(self, body: ActionTokenRequest) -> BoardConfig:
        """The board asked for (default `global`); an unknown one is a bad request."""
        name = DEFAULT_BOARD if isinstance(body.board, UnsetType) else body.board
        if not BOARD_RE.match(name):
            raise InvalidRequest("board must be a board's name", details={"field": "board"})
        try:
            return await self._catalog.find(name)
        except BoardNotFound:
            raise InvalidRequest("No such board", details={"field": "board"}) from None

    async def issue(self, user_id: str, body: ActionTokenRequest, device: str = "") -> IssuedToken:
        """A token for one action on the board asked for, bound to the caller's
        session `device` ('' = none named): only a session from it can spend it."""
        board = await self._board(body)
        action_type = validate_action_type(body.action_type, board.action_types)
        session_id = validate_session_id(body.session_id)
        if not isinstance(body.timestamp, UnsetType):
            validate_timestamp(body.timestamp)
        token = new_token(board.name)
        maximum = board.action_types[action_type]
        rate = await self._scripts.issue_action_token(
            self._keys.board(board.name),
            self._settings.rate_limit_action_token,
            user_id=user_id,
            token_hash=token_hash(token),
            session_id=session_id,
            action_type=action_type,
            max_increase=maximum,
            ttl_ms=self._settings.action_token_ttl * 1000,
            max_open=self._settings.max_open_action_tokens,
            device=device,
        )
        return IssuedToken(token, self._settings.action_token_ttl, maximum, rate, board.name)
