"""The API's request bodies, each declared once as a msgspec Struct.

A route reads its body with `scoreboard.http.bodies.read_body(request, Struct)`: the
fields missing and unknown, their JSON types and the constraints declared here are
checked while the body is converted, and the OpenAPI document's request schemas are
generated from these same Structs (`request_schemas`). What depends on the server's
settings (its action types, the score ceiling) the document adds to them; what needs
the domain (a username's NFKC form, the ceiling of a token's action type, a board that
exists) the domain checks, against the patterns of `scoreboard.core.patterns` that the
schemas here publish.
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


class Device(Body):
    """The device a player signs in from: `id` (the game's own id for the device) or
    `fingerprint` (a SHA-256 of its fingerprint, hex), one of the two; `public_key`
    (Ed25519, base64), once given, is pinned to the device."""

    id: Annotated[str, _documented(pattern=patterns.DEVICE_ID)] | UnsetType = UNSET
    fingerprint: Annotated[str, _documented(pattern=patterns.DEVICE_FINGERPRINT)] | UnsetType = (
        UNSET
    )
    public_key: Annotated[str, _documented(pattern=patterns.DEVICE_PUBLIC_KEY)] | UnsetType = UNSET


class Login(Body):
    username: str
    password: str
    # the device the session is opened from: action tokens bind to it
    device: Device | UnsetType = UNSET
    # the one-time code (or a recovery code) of an account with one-time passwords on
    otp: Annotated[str, Meta(max_length=32)] | UnsetType = UNSET


class MfaCode(Body):
    code: Annotated[str, Meta(max_length=32)]


class GraphQLRequest(Body):
    """A GraphQL request (`POST /graphql`): the query, its variables and which of its
    operations to run. What the query asks is checked against the schema."""

    query: Annotated[str, Meta(min_length=1, max_length=20_000)]
    variables: dict[str, Any] | UnsetType | None = UNSET
    operationName: str | UnsetType | None = UNSET
    extensions: dict[str, Any] | UnsetType | None = UNSET


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


Level = Annotated[int, Meta(ge=0, le=MAX_LEVEL)]


class ActionRules(Body):
    """A board's plausibility rules for one of its action types (anti-cheat): the most
    points per second of play, the range of levels a game allows, and whether a claimed
    `time_taken` is `optional`, `required`, or required and bounded by the action
    token's age (`token`). Left out: the service's defaults."""

    points_per_second: Annotated[float, Meta(gt=0, le=1e12)] | UnsetType = UNSET
    levels: Annotated[list[Level], Meta(min_length=2, max_length=2)] | UnsetType = UNSET
    time_taken: Literal["optional", "required", "token"] | UnsetType = UNSET


class Signing(Body):
    """A board's game-server key: while set, every score update on the board carries
    the game server's signature. `hmac-sha256`: `key` is the shared secret (32 to 256
    bytes); `ed25519`: `key` is the public key, its 32 bytes in base64. Never returned."""

    algorithm: Literal["hmac-sha256", "ed25519"]
    key: Annotated[str, Meta(min_length=32, max_length=256)]


class BoardCreate(Body):
    name: BoardName
    action_types: dict[str, int | float]
    periods: list[str] | UnsetType = UNSET
    anticheat: dict[str, ActionRules] | UnsetType = UNSET
    signing: Signing | UnsetType | None = UNSET


class BoardChange(Body):
    action_types: dict[str, int | float] | UnsetType = UNSET
    periods: list[str] | UnsetType = UNSET
    anticheat: dict[str, ActionRules] | UnsetType = UNSET
    signing: Signing | UnsetType | None = UNSET  # null: updates no longer signed


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
    MfaCode,
    GraphQLRequest,
)


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


__all__ = [
    "MAX_DURATION_SECONDS",
    "MAX_LEVEL",
    "MAX_REASON_CHARS",
    "REQUEST_BODIES",
    "ActionData",
    "ActionTokenRequest",
    "Adjustment",
    "AnyReason",
    "BoardChange",
    "BoardCreate",
    "BoardName",
    "Body",
    "Device",
    "Email",
    "GraphQLRequest",
    "Login",
    "MaybeReason",
    "MfaCode",
    "Password",
    "Reason",
    "Refresh",
    "Register",
    "ScoreUpdate",
    "SessionId",
    "Signing",
    "Timestamp",
    "Username",
    "WithReason",
    "field_names",
    "request_schemas",
]
