"""The API's shared response shapes, each declared once as a msgspec Struct: the
routes and live feeds build them, msgspec encodes them (`encoding.envelope`), and the
OpenAPI document's component schemas are generated from them (`response_schemas`).
"""

# no `from __future__ import annotations`: msgspec reads these annotations at run time

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from scoreboard.core import patterns
from scoreboard.core.contract.requests import ActionRules

Uuid = Annotated[str, Meta(extra_json_schema={"format": "uuid"})]
Instant = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
Score = Annotated[int, Meta(ge=0, le=2**53 - 1)]
Rank = Annotated[int, Meta(ge=1)]
Count = Annotated[int, Meta(ge=0)]


class Reply(msgspec.Struct, kw_only=True):
    """A response shape (a field left UNSET is not in the JSON)."""


class Entry(Reply):
    rank: Rank
    user_id: Uuid
    username: str
    score: Score
    last_updated: Instant | None


class Board(Reply):
    """A page of a ranking (the top 10 is the first page of ten)."""

    leaderboard: list[Entry]
    last_updated: Instant | None
    total_players: Count
    limit: int | UnsetType = UNSET
    offset: int | UnsetType = UNSET


class RankingPage(Board, kw_only=True):
    """A page of one ranking of a board: its all-time one, a current period's, or a
    closed period's or ended season's from history."""

    board: str
    period: str
    period_id: str | None
    next_reset_at: Instant | UnsetType | None = UNSET
    starts_at: Instant | UnsetType | None = UNSET
    ends_at: Instant | UnsetType | None = UNSET


class Period(Reply):
    id: str
    kind: Literal["daily", "weekly", "monthly"]
    starts_at: Instant
    ends_at: Instant
    next_reset_at: Instant


class PeriodStanding(Reply):
    id: str
    score: Score
    rank: Rank
    next_reset_at: Instant


class BoardInfo(Reply):
    name: str
    action_types: dict[str, int]
    periods: list[Period]
    season: Annotated[int, Meta(ge=1)]
    anticheat: dict[str, ActionRules]
    # the algorithm of the game-server key updates must be signed with (never the key)
    signed_with: Literal["hmac-sha256", "ed25519"] | None = None


class Registered(Reply):
    user_id: Uuid
    username: str
    email: str


class ActionTokenIssued(Reply):
    action_token: str
    expires_in: int
    max_score_increase: int


class ScoreUpdated(Reply):
    """A score update's answer: the new total and rank on the token's board, and the
    standing in each of the board's current periods."""

    new_score: Score
    score_increase: int
    rank: Rank
    user_id: Uuid
    board: Annotated[str, Meta(extra_json_schema={"pattern": patterns.BOARD_NAME})]
    periods: dict[str, PeriodStanding]


class PlayerScore(Reply):
    user_id: Uuid
    username: str
    current_score: Score
    rank: Rank | None
    last_updated: Instant | None


class Around(Reply):
    """A player's neighbourhood in a ranking (labelled when it is a board's)."""

    user_id: Uuid
    rank: Rank | None
    radius: int
    leaderboard: list[Entry]
    total_players: Count
    board: str | UnsetType = UNSET
    period: str | UnsetType = UNSET
    period_id: str | UnsetType | None = UNSET
    next_reset_at: Instant | UnsetType | None = UNSET


class Standing(Reply):
    """A player in one ranking of a board (`id`: the period's; none for all-time)."""

    score: Score
    rank: Rank | None
    total_players: Count
    next_reset_at: Instant | None
    id: str | UnsetType = UNSET


class PlayerStandings(Reply):
    user_id: Uuid
    username: str
    board: str
    periods: dict[str, Standing]  # by ranking: 'all' and each period kind


class BanChanged(Reply):
    user_id: Uuid
    banned: bool


class ScoreAdjusted(Reply):
    user_id: Uuid
    new_score: Score
    rank: Rank | None


class ScoreRemoved(Reply):
    user_id: Uuid
    removed: Literal[True] = True


class SeasonEnded(Reply):
    board: str
    ended_season: int
    season: int
    players: Count
    archive: str  # the ended season's id in history: `season:<n>`


class LoggedOut(Reply):
    logged_out: Literal[True] = True


class MfaEnrolment(Reply):
    secret: str  # base32, to type into an authenticator app
    otpauth_uri: str  # the same as an otpauth:// URI (a QR code's content)
    recovery_codes: list[str]  # each accepted once in place of a code; shown only now


class MfaConfirmed(Reply):
    mfa_enabled: Literal[True] = True


class TokenPair(Reply):
    access_token: str
    refresh_token: str
    user_id: Uuid
    expires_in: int
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (the scheme's name)


class Change(Reply):
    """One player's move in a live-feed message."""

    user_id: Uuid
    username: str
    old_rank: Rank | None
    new_rank: Rank | None  # None: off the board (an admin's removal)
    score_change: int
    new_score: Score


class LeaderboardUpdate(Reply):
    """A live-feed message: the WebSocket's `data`, the SSE event's data. A ranking
    other than the default board's all-time one is labelled with its board and period."""

    leaderboard: list[Entry]
    updated_user: Change | None
    updated_users: list[Change]
    total_players: int
    timestamp: Instant | None
    board: str | UnsetType = UNSET
    period: str | UnsetType = UNSET
    period_id: str | UnsetType | None = UNSET
    next_reset_at: Instant | UnsetType | None = UNSET


class AuditItem(Reply):
    event_id: str | None
    event_type: str
    user_id: str | None
    username: str | None
    ip_address: str | None
    user_agent: str | None
    score_change: int | None
    validation_result: str | None
    risk_score: float | None
    reasons: list[Any]
    details: dict[str, Any]
    timestamp: Instant


class AuditPage(Reply):
    items: list[AuditItem]
    next_cursor: str | None


class DevicePlayer(Reply):
    """An account that signed in from a device, and when last."""

    user_id: Uuid
    username: str
    last_seen: Instant


class DeviceInfo(Reply):
    """A registered device, as admins see it. `players`: accounts that signed in from
    it within the anti-cheat window; `flagged_at`: when that first reached the farm
    threshold. `accounts` (a device's own page only): those accounts, latest first."""

    device_id: Annotated[str, Meta(pattern=patterns.DEVICE_HANDLE)]
    kind: Literal["id", "fingerprint"]
    label: str  # the client's id or fingerprint, as given
    public_key_pinned: bool
    first_seen: Instant
    last_seen: Instant
    players: Count
    flagged_at: Instant | None
    blocked_at: Instant | None
    block_reason: str | None
    accounts: list[DevicePlayer] | UnsetType = UNSET


class DeviceList(Reply):
    devices: list[DeviceInfo]


RESPONSE_SHAPES: tuple[type[Reply], ...] = (
    Entry,
    Board,
    RankingPage,
    Period,
    PeriodStanding,
    BoardInfo,
    Registered,
    ActionTokenIssued,
    ScoreUpdated,
    PlayerScore,
    Around,
    Standing,
    PlayerStandings,
    BanChanged,
    ScoreAdjusted,
    ScoreRemoved,
    SeasonEnded,
    LoggedOut,
    TokenPair,
    MfaEnrolment,
    MfaConfirmed,
    Change,
    LeaderboardUpdate,
    AuditItem,
    AuditPage,
    DevicePlayer,
    DeviceInfo,
    DeviceList,
)


def response_schemas() -> dict[str, Any]:
    """JSON Schema of every shared response shape, by Struct name."""
    _, components = msgspec.json.schema_components(
        RESPONSE_SHAPES, ref_template="#/components/schemas/{name}"
    )
    return components


__all__ = [
    "RESPONSE_SHAPES",
    "ActionTokenIssued",
    "Around",
    "AuditItem",
    "AuditPage",
    "BanChanged",
    "Board",
    "BoardInfo",
    "Change",
    "Count",
    "DeviceInfo",
    "DeviceList",
    "DevicePlayer",
    "Entry",
    "Instant",
    "LeaderboardUpdate",
    "LoggedOut",
    "MfaConfirmed",
    "MfaEnrolment",
    "Period",
    "PeriodStanding",
    "PlayerScore",
    "PlayerStandings",
    "Rank",
    "RankingPage",
    "Registered",
    "Reply",
    "Score",
    "ScoreAdjusted",
    "ScoreRemoved",
    "ScoreUpdated",
    "SeasonEnded",
    "Standing",
    "TokenPair",
    "Uuid",
    "response_schemas",
]
