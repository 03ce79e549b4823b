"""The API's request bodies and its shared response shapes, each declared once as a
msgspec Struct.

A route reads its body with `scoreboard.http.bodies.read_body(request, Struct)`: the
fields missing and unknown, their JSON types and the constraints declared here are
checked while the body is converted, and the OpenAPI document's request schemas are
generated from these same Structs (`request_schemas`). What depends on the server's
settings (its action types, the score ceiling) the document adds to them; what needs
the domain (a username's NFKC form, the ceiling of a token's action type, a board that
exists) the domain checks, against the patterns of `scoreboard.core.patterns` that the
schemas here publish.

The response shapes are what the routes answer with: they build these Structs, the
envelope is encoded by msgspec from them (`scoreboard.http.responses.ok`), and the
document's component schemas are generated from them (`response_schemas`).
"""

# no `from __future__ import annotations`: msgspec reads these annotations at run time

import functools
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from scoreboard.core import patterns

MAX_LEVEL = 1_000_000
MAX_DURATION_SECONDS = 86_400
MAX_REASON_CHARS = 500


def _documented(**schema: Any) -> Meta:
    """A constraint the domain checks (after normalising the value), published here.
    The published forms are the canonical ones: the server also accepts what normalises
    to them (NFKC names, upper-case e-mail addresses, a username's case)."""
    return Meta(extra_json_schema=schema)


Username = Annotated[str, _documented(pattern=patterns.USERNAME)]
Email = Annotated[str, _documented(maxLength=100, pattern=patterns.EMAIL)]
Password = Annotated[str, _documented(pattern=patterns.PASSWORD)]
SessionId = Annotated[str, _documented(pattern=patterns.SESSION_ID)]
BoardName = Annotated[str, _documented(pattern=patterns.BOARD_NAME)]
# an admin's reason: required ones hold a non-blank character
Reason = Annotated[str, Meta(max_length=MAX_REASON_CHARS, pattern="\\S")]
AnyReason = Annotated[str, Meta(max_length=MAX_REASON_CHARS)]
Timestamp = Annotated[str, _documented(format="date-time")]


class Body(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A JSON object with exactly the fields of its Struct (an unknown one is 400)."""


class Register(Body):
    username: Username
    email: Email
    password: Password


class Login(Body):
    username: str
    password: str


class Refresh(Body):
    refresh_token: str


class ActionTokenRequest(Body):
    action_type: str
    session_id: SessionId
    timestamp: Timestamp | UnsetType = UNSET
    board: BoardName | UnsetType = UNSET


class ActionData(Body):
    """The action's telemetry, which the anti-cheat judge reads. Closed: a misspelt key
    cannot quietly turn a check off."""

    level: Annotated[int, Meta(ge=0, le=MAX_LEVEL)] | UnsetType = UNSET
    time_taken: Annotated[float, Meta(gt=0, le=MAX_DURATION_SECONDS)] | UnsetType = UNSET
    accuracy: Annotated[float, Meta(ge=0, le=1)] | UnsetType = UNSET


class ScoreUpdate(Body):
    # a JSON integer (5.0 is one, as JSON Schema reads numbers) or decimal digits
    score_increase: int | float | str
    action_type: str | UnsetType = UNSET
    session_id: SessionId | UnsetType = UNSET
    action_data: ActionData | UnsetType = UNSET


class BoardCreate(Body):
    name: BoardName
    action_types: dict[str, int | float]
    periods: list[str] | UnsetType = UNSET


class BoardChange(Body):
    action_types: dict[str, int | float] | UnsetType = UNSET
    periods: list[str] | UnsetType = UNSET


class WithReason(Body):
    reason: Reason


class MaybeReason(Body):
    reason: AnyReason | UnsetType = UNSET


class Adjustment(Body):
    delta: int
    reason: Reason


REQUEST_BODIES: tuple[type[Body], ...] = (
    Register,
    Login,
    Refresh,
    ActionTokenRequest,
    ScoreUpdate,
    BoardCreate,
    BoardChange,
    WithReason,
    MaybeReason,
    Adjustment,
)


# -- response shapes

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
    TokenPair,
    Change,
    LeaderboardUpdate,
    AuditItem,
    AuditPage,
)


_ENCODER = msgspec.json.Encoder()


class _Success(msgspec.Struct):
    success: bool
    data: Any


def envelope(data: Any) -> bytes:
    """`{"success": true, "data": …}` as JSON: the answer of every route that succeeds
    (Structs, dicts, lists and scalars inside)."""
    return _ENCODER.encode(_Success(True, data))


def encode(value: Any) -> bytes:
    return _ENCODER.encode(value)


def response_schemas() -> dict[str, Any]:
    """JSON Schema of every shared response shape, by Struct name."""
    _, components = msgspec.json.schema_components(
        RESPONSE_SHAPES, ref_template="#/components/schemas/{name}"
    )
    return components


def request_schemas() -> dict[str, Any]:
    """JSON Schema of every request body, by Struct name (references between them
    point into the OpenAPI document's components)."""
    _, components = msgspec.json.schema_components(
        REQUEST_BODIES, ref_template="#/components/schemas/{name}"
    )
    return components


@functools.cache
def field_names(body: type[Body]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The Struct's (required, optional) field names (read once per Struct: msgspec's
    introspection costs tens of microseconds, a request's whole budget is a few
    hundred)."""
    fields = msgspec.structs.fields(body)
    return (
        tuple(f.encode_name for f in fields if f.required),
        tuple(f.encode_name for f in fields if not f.required),
    )
