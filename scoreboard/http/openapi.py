"""The OpenAPI 3.1 document, assembled from the application's routes: every route
must have an operation here (a test fails otherwise), and each operation lists the
statuses it can answer, its request and response schemas, and its security.

Paths are given under `/v1`; every route answers without the prefix too.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from scoreboard import __version__
from scoreboard.core import contract, patterns
from scoreboard.core.contract import Body
from scoreboard.core.errors import error_codes
from scoreboard.core.settings import Settings

PREFIX = "/v1"
_WHY = {
    400: "Invalid input: `details.field` or `details.reason` says what",
    401: "The access token is missing, invalid, expired or revoked",
    403: "Not allowed (a suspended account, a non-admin, registration closed)",
    404: "No such user, board or ended season",
    409: "Taken, or not allowed in this state",
    413: "The body is larger than SCOREBOARD_MAX_BODY_BYTES",
    415: "The body is not application/json",
    429: "Rate limited; see Retry-After",
    503: (
        "Redis or PostgreSQL unreachable or stalled, or the board being rebuilt;"
        " details.outcome: not_applied (nothing changed) or unknown (send the same request"
        " again for the one true answer)"
    ),
}

UUID = {"type": "string", "format": "uuid"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
    }


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "success": {"const": False},
            "error": _object(
                {
                    "code": {"enum": error_codes()},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                }
            ),
        }
    ),
}


def _ok(schema: dict[str, Any], description: str = "Done") -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": _object({"success": {"const": True}, "data": schema})}
        },
    }


def _errors(*statuses: int) -> dict[str, Any]:
    error = {"application/json": {"schema": _ref("Error")}}
    return {str(status): {"description": _WHY[status], "content": error} for status in statuses}


def _json_body(body: type[Body], *, required: bool = True) -> dict[str, Any]:
    """A request body: the schema generated from its Struct (`scoreboard.core.contract`)."""
    schema = _ref(body.__name__)
    return {"required": required, "content": {"application/json": {"schema": schema}}}


BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_BODY_ERRORS = (400, 413, 415)
_USER_PATH = [{"name": "user_id", "in": "path", "required": True, "schema": UUID}]
_PAGE_QUERY = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
    {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
]


def _query(name: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _integers(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


def _operation_id(path: str, method: str) -> str:
    name = path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    return f"{method}_{name or 'root'}"


def _admin(
    summary: str, body: type[Body], data: dict[str, Any], *, body_required: bool = True
) -> dict[str, Any]:
    return {
        "tags": ["admin"],
        "summary": summary,
        "security": BEARER,
        "parameters": _USER_PATH,
        "requestBody": _json_body(body, required=body_required),
        "responses": {"200": _ok(data), **_errors(*_BODY_ERRORS, 401, 403, 404, 409, 503)},
    }


def _listing(
    summary: str, parameters: list[dict[str, Any]], data: str = "AuditPage"
) -> dict[str, Any]:
    return {
        "tags": ["admin"],
        "summary": summary,
        "security": BEARER,
        "parameters": parameters,
        "responses": {"200": _ok(_ref(data)), **_errors(400, 401, 403, 404, 503)},
    }


_DEVICE_PATH = [
    {
        "name": "device_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": patterns.DEVICE_HANDLE},
    }
]


def _device_action(summary: str, body: type[Body], *, body_required: bool = True) -> dict[str, Any]:
    return {
        **_admin(summary, body, _ref("DeviceInfo"), body_required=body_required),
        "parameters": _DEVICE_PATH,
    }


BOARD_NAME = {"type": "string", "pattern": patterns.BOARD_NAME}
PERIOD_KIND = {"enum": ["all", "daily", "weekly", "monthly"]}
_BOARD_PATH = [{"name": "board", "in": "path", "required": True, "schema": BOARD_NAME}]
_BOARD_READ_ERRORS = (400, 404, 429, 503)


def _action_types(ceiling: int) -> dict[str, Any]:
    return {
        "type": "object",
        "minProperties": 1,
        "maxProperties": 50,
        "propertyNames": {"pattern": "^[ -~]{1,50}$"},
        "additionalProperties": _integers(1, ceiling),
    }


_PERIOD_KINDS = {
    "type": "array",
    "uniqueItems": True,
    "items": {"enum": ["daily", "weekly", "monthly"]},
}


def _request_schemas(action_types: list[str], ceiling: int) -> dict[str, Any]:
    """The request bodies' schemas as their Structs declare them, with what depends on
    the server's settings: its action types and its score ceiling."""
    schemas = copy.deepcopy(contract.request_schemas())
    refined = {
        ("ActionTokenRequest", "action_type"): {"enum": action_types},
        ("ScoreUpdate", "action_type"): {"enum": action_types},
        ("ScoreUpdate", "score_increase"): {
            "oneOf": [
                {"type": "integer", "minimum": 1, "maximum": ceiling},
                {"type": "string", "pattern": patterns.SCORE_INCREASE_TEXT},
            ]
        },
        ("BoardCreate", "action_types"): _action_types(ceiling),
        ("BoardChange", "action_types"): _action_types(ceiling),
        ("BoardCreate", "periods"): _PERIOD_KINDS,
        ("BoardChange", "periods"): _PERIOD_KINDS,
        ("Adjustment", "delta"): {**_integers(-ceiling, ceiling), "not": {"const": 0}},
    }
    for (body, field), schema in refined.items():
        schemas[body]["properties"][field] = schema
    return schemas


_HEALTH = _object({"status": {"type": "string"}})
_SSE_EVENT = {
    "description": "One event: `data` is a LeaderboardUpdate as JSON text",
    **_object(
        {
            "event": {"const": "leaderboard_update"},
            "id": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _ref("LeaderboardUpdate"),
            },
        }
    ),
}

_GRAPHQL_RESULT = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {
                "data": {"type": ["object", "null"]},
                "errors": {"type": "array", "items": {"type": "object"}},
            },
        }
    }
}

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("/health", "get"): {
        "tags": ["operations"],
        "summary": "Liveness: the process answers",
        "responses": {"200": _ok(_HEALTH)},
    },
    ("/health/detailed", "get"): {
        "tags": ["operations"],
        "summary": "Redis, PostgreSQL, the board and the syncer, each within a deadline",
        "responses": {"200": _ok(_HEALTH), **_errors(503)},
    },
    ("/metrics", "get"): {
        "tags": ["operations"],
        "summary": "Prometheus text exposition",
        "responses": {"200": {"description": "Metrics", "content": {"text/plain": {}}}},
    },
    ("/auth/register", "post"): {
        "tags": ["accounts"],
        "summary": "Create an account",
        "requestBody": _json_body(contract.Register),
        "responses": {
            "201": _ok(_ref("Registered"), "Created"),
            **_errors(*_BODY_ERRORS, 403, 409, 503),
        },
    },
    ("/auth/login", "post"): {
        "tags": ["accounts"],
        "summary": "A token pair for a username and password (and `otp` when MFA is on)",
        "requestBody": _json_body(contract.Login),
        "responses": {
            "200": _ok(_ref("TokenPair")),
            **_errors(*_BODY_ERRORS, 401, 403, 429, 503),
        },
    },
    ("/auth/refresh", "post"): {
        "tags": ["accounts"],
        "summary": "Spend a refresh token for a new pair (a spent one revokes its session)",
        "requestBody": _json_body(contract.Refresh),
        "responses": {"200": _ok(_ref("TokenPair")), **_errors(*_BODY_ERRORS, 401, 503)},
    },
    ("/auth/logout", "post"): {
        "tags": ["accounts"],
        "summary": "Revoke this session",
        "security": BEARER,
        "responses": {
            "200": _ok(_ref("LoggedOut")),
            **_errors(401, 503),
        },
    },
    ("/auth/mfa/enroll", "post"): {
        "tags": ["accounts"],
        "summary": "A one-time-password secret and recovery codes, on once confirmed",
        "security": BEARER,
        "responses": {
            "200": _ok(_ref("MfaEnrolment")),
            **_errors(401, 409, 503),
        },
    },
    ("/auth/mfa/confirm", "post"): {
        "tags": ["accounts"],
        "summary": "Turn one-time passwords on with a current code",
        "security": BEARER,
        "requestBody": _json_body(contract.MfaCode),
        "responses": {
            "200": _ok(_ref("MfaConfirmed")),
            **_errors(*_BODY_ERRORS, 401, 429, 503),
        },
    },
    ("/auth/action-token", "post"): {
        "tags": ["scores"],
        "summary": "A one-time token for the score update of one completed action",
        "security": BEARER,
        "requestBody": _json_body(contract.ActionTokenRequest),
        "responses": {
            "200": _ok(_ref("ActionTokenIssued")),
            **_errors(*_BODY_ERRORS, 401, 403, 429, 503),
        },
    },
    ("/scores/update", "post"): {
        "tags": ["scores"],
        "summary": "Spend an action token on a score increase (one atomic step)",
        "security": [{"bearer": [], "actionToken": []}],
        "parameters": [
            {
                "name": "X-Action-Signature",
                "in": "header",
                "required": False,
                "description": (
                    "On a board with a game-server key (`signed_with`): `t=<unix seconds>,"
                    "sig=<base64url>`, the game server's signature of `scoreboard.v1\\n<action"
                    " token>\\n<user id>\\n<score increase>\\n<unix seconds>`"
                ),
                "schema": {"type": "string"},
            }
        ],
        "requestBody": _json_body(contract.ScoreUpdate),
        "responses": {
            "200": _ok(_ref("ScoreUpdated")),
            **_errors(*_BODY_ERRORS, 401, 403, 429, 503),
        },
    },
    ("/scores/user/{user_id}", "get"): {
        "tags": ["scores"],
        "summary": "A player's score and rank",
        "parameters": _USER_PATH,
        "responses": {
            "200": _ok(_ref("PlayerScore")),
            **_errors(400, 404, 429, 503),
        },
    },
    ("/leaderboard/top10", "get"): {
        "tags": ["leaderboard"],
        "summary": "The top 10",
        "responses": {"200": _ok(_ref("Board")), **_errors(429, 503)},
    },
    ("/leaderboard", "get"): {
        "tags": ["leaderboard"],
        "summary": "A page of the board",
        "parameters": [
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 100},
            },
            {
                "name": "offset",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0, "maximum": 10_000_000},
            },
        ],
        "responses": {"200": _ok(_ref("Board")), **_errors(400, 429, 503)},
    },
    ("/leaderboard/around/{user_id}", "get"): {
        "tags": ["leaderboard"],
        "summary": "A player's neighbourhood on the board",
        "parameters": [
            *_USER_PATH,
            {
                "name": "radius",
                "in": "query",
                "schema": {"type": "integer", "minimum": 0, "maximum": 50},
            },
        ],
        "responses": {
            "200": _ok(_ref("Around")),
            **_errors(400, 404, 429, 503),
        },
    },
    ("/", "get"): {
        "tags": ["live"],
        "summary": "The live board page",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
    },
    ("/embed", "get"): {
        "tags": ["live"],
        "summary": "The live board made to be framed (?board=&period=&theme=dark|light)",
        "description": (
            "Framed by the server's own pages and the origins of SCOREBOARD_EMBED_ORIGINS"
            " only. A parent page of those origins may hand it a signed-in player's access"
            ' token: postMessage({type: "scoreboard:token", access_token}); it then follows'
            " over the WebSocket and shows the player's neighbourhood, and posts"
            ' {type: "scoreboard:token-expired"} to its parent when the token stops working.'
        ),
        "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
    },
    ("/console", "get"): {
        "tags": ["admin"],
        "summary": "The admin console page (its data come from the admin routes)",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
    },
    ("/sse/leaderboard", "get"): {
        "tags": ["live"],
        "summary": "Server-Sent Events: `leaderboard_update` events (data: LeaderboardUpdate)",
        "description": (
            "The board first, then each change of the top N, coalesced within"
            " SCOREBOARD_BROADCAST_INTERVAL_MS. Each event has an `id`; a reconnect gets the"
            " board afresh."
        ),
        "responses": {
            "200": {
                "description": "An event stream",
                "content": {"text/event-stream": {"schema": _SSE_EVENT}},
            },
            **_errors(429),
        },
    },
    ("/graphql", "post"): {
        "tags": ["graphql"],
        "summary": "GraphQL reads: boards, rankings, a player's standings, history",
        "description": (
            "The schema is in the guide (`docs/guide.md#graphql`) and, unless"
            " `SCOREBOARD_GRAPHQL_INTROSPECTION=false`, asked of the server. Each top-level"
            " field counts one read against the read limit; over it, 429 with `Retry-After`"
            " and the field's error. Errors carry the service's code in `extensions.code`."
        ),
        "requestBody": _json_body(contract.GraphQLRequest),
        "responses": {
            "200": {"description": "The result", "content": _GRAPHQL_RESULT},
            "429": {"description": "Read limit reached", "content": _GRAPHQL_RESULT},
            **_errors(*_BODY_ERRORS),
        },
    },
    ("/graphql", "websocket"): {
        "tags": ["graphql"],
        "summary": "GraphQL subscriptions over graphql-transport-ws",
        "description": (
            '`subscription { leaderboard(board: "global", period: "all") { entries'
            " { rank username score } totalPlayers } }`: the ranking as it stands, then"
            " after each change."
        ),
        "responses": {"101": {"description": "Switching protocols"}},
    },
    ("/ws/leaderboard", "websocket"): {
        "tags": ["live"],
        "summary": "WebSocket (upgrade): `?token=<access token>`",
        "description": (
            'Send `{"type": "subscribe_leaderboard", "data": {}}`; receive'
            ' `{"type": "leaderboard_update", "data": LeaderboardUpdate}` for the board'
            ' and each change, `{"type": "error", "data": {code, message}}` for a bad'
            " message. Refused at the handshake (403) without a valid token or from an"
            " origin not allowed; closed with 1008 when the session is revoked or the token"
            " expires, 1001 when the server shuts down."
        ),
        "parameters": [
            {"name": "token", "in": "query", "required": True, "schema": {"type": "string"}}
        ],
        "responses": {
            "101": {"description": "Switching protocols"},
            "403": {"description": "Refused"},
        },
    },
    ("/admin/players/{user_id}/ban", "post"): _admin(
        "Ban a player: off every view at once, sessions revoked, score kept",
        contract.WithReason,
        _ref("BanChanged"),
    ),
    ("/admin/players/{user_id}/unban", "post"): _admin(
        "Unban: back with the same score and tie position",
        contract.MaybeReason,
        _ref("BanChanged"),
        body_required=False,
    ),
    ("/admin/players/{user_id}/adjust", "post"): _admin(
        "Change a score through the update's atomic path",
        contract.Adjustment,
        _ref("ScoreAdjusted"),
    ),
    ("/admin/players/{user_id}/score", "delete"): _admin(
        "Remove a score: off the board, total 0, history kept",
        contract.WithReason,
        _ref("ScoreRemoved"),
    ),
    ("/admin/players/{user_id}/history", "get"): _listing(
        "A player's updates with their risk, refusals and admin actions, newest first",
        [*_USER_PATH, *_PAGE_QUERY],
    ),
    ("/admin/flagged", "get"): _listing(
        "Flagged and anti-cheat-rejected updates, newest first", _PAGE_QUERY
    ),
    ("/admin/players/{user_id}/devices", "get"): _listing(
        "The devices a player signed in from, latest first", _USER_PATH, "DeviceList"
    ),
    ("/admin/devices/flagged", "get"): _listing(
        "Devices flagged as carrying a farm of accounts, latest first", [], "DeviceList"
    ),
    ("/admin/devices/{device_id}", "get"): _listing(
        "A device, with the accounts that signed in from it", _DEVICE_PATH, "DeviceInfo"
    ),
    ("/admin/devices/{device_id}/block", "post"): _device_action(
        "Block a device: no login from it, its sessions revoked", contract.WithReason
    ),
    ("/admin/devices/{device_id}/unblock", "post"): _device_action(
        "Unblock a device", contract.MaybeReason, body_required=False
    ),
    ("/admin/audit", "get"): _listing(
        "Audit records, newest first",
        [
            {
                "name": "event_type",
                "in": "query",
                "schema": {"type": "string", "pattern": "^[a-z_]{1,50}$"},
            },
            {"name": "user_id", "in": "query", "schema": UUID},
            {
                "name": "since",
                "in": "query",
                "description": "records from this instant on (RFC 3339, with its offset)",
                "schema": {"type": "string", "format": "date-time"},
            },
            {
                "name": "until",
                "in": "query",
                "description": "records before this instant (RFC 3339, with its offset)",
                "schema": {"type": "string", "format": "date-time"},
            },
            *_PAGE_QUERY,
        ],
    ),
    ("/boards", "get"): {
        "tags": ["boards"],
        "summary": "Every board, its current periods with their next reset, its season",
        "responses": {
            "200": _ok({"type": "array", "items": _ref("BoardInfo")}),
            **_errors(429, 503),
        },
    },
    ("/boards/{board}/top10", "get"): {
        "tags": ["boards"],
        "summary": "The top 10 of one of the board's rankings",
        "parameters": [*_BOARD_PATH, _query("period", PERIOD_KIND)],
        "responses": {"200": _ok(_ref("RankingPage")), **_errors(*_BOARD_READ_ERRORS)},
    },
    ("/boards/{board}/leaderboard", "get"): {
        "tags": ["boards"],
        "summary": "A page of one of the board's rankings",
        "parameters": [
            *_BOARD_PATH,
            _query("period", PERIOD_KIND),
            _query("limit", _integers(1, 100)),
            _query("offset", _integers(0, 10_000_000)),
        ],
        "responses": {"200": _ok(_ref("RankingPage")), **_errors(*_BOARD_READ_ERRORS)},
    },
    ("/boards/{board}/around/{user_id}", "get"): {
        "tags": ["boards"],
        "summary": "A player's neighbourhood in one of the board's rankings",
        "parameters": [
            *_BOARD_PATH,
            *_USER_PATH,
            _query("period", PERIOD_KIND),
            _query("radius", _integers(0, 50)),
        ],
        "responses": {
            "200": _ok(_ref("Around")),
            **_errors(*_BOARD_READ_ERRORS),
        },
    },
    ("/boards/{board}/players/{user_id}", "get"): {
        "tags": ["boards"],
        "summary": "A player's score and rank in every ranking of the board",
        "parameters": [*_BOARD_PATH, *_USER_PATH],
        "responses": {
            "200": _ok(_ref("PlayerStandings")),
            **_errors(*_BOARD_READ_ERRORS),
        },
    },
    ("/boards/{board}/history/{period_id}", "get"): {
        "tags": ["boards"],
        "summary": "A closed period's or an ended season's final ranking (PostgreSQL)",
        "parameters": [
            *_BOARD_PATH,
            {
                "name": "period_id",
                "in": "path",
                "required": True,
                "schema": {
                    "type": "string",
                    "pattern": "^(daily:[0-9]{4}-[0-9]{2}-[0-9]{2}|weekly:[0-9]{4}-W[0-9]{2}"
                    "|monthly:[0-9]{4}-[0-9]{2}|season:[1-9][0-9]{0,8})$",
                },
            },
            _query("limit", _integers(1, 100)),
            _query("offset", _integers(0, 10_000_000)),
        ],
        "responses": {"200": _ok(_ref("RankingPage")), **_errors(*_BOARD_READ_ERRORS)},
    },
    ("/admin/boards", "post"): {
        "tags": ["admin"],
        "summary": "Create a board",
        "security": BEARER,
        "requestBody": _json_body(contract.BoardCreate),
        "responses": {
            "201": _ok(_ref("BoardInfo"), "Created"),
            **_errors(*_BODY_ERRORS, 401, 403, 409, 503),
        },
    },
    ("/admin/boards/{board}", "patch"): {
        "tags": ["admin"],
        "summary": "Change a board's action types or periods (every process follows)",
        "security": BEARER,
        "parameters": _BOARD_PATH,
        "requestBody": _json_body(contract.BoardChange),
        "responses": {
            "200": _ok(_ref("BoardInfo")),
            **_errors(*_BODY_ERRORS, 401, 403, 404, 503),
        },
    },
    ("/admin/boards/{board}/reset", "post"): {
        "tags": ["admin"],
        "summary": "End the all-time ranking's season: archived, emptied, the number up",
        "security": BEARER,
        "parameters": _BOARD_PATH,
        "requestBody": _json_body(contract.WithReason),
        "responses": {
            "200": _ok(_ref("SeasonEnded")),
            **_errors(*_BODY_ERRORS, 401, 403, 404, 503),
        },
    },
    ("/openapi.json", "get"): {
        "tags": ["operations"],
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
    },
    ("/docs", "get"): {
        "tags": ["operations"],
        "summary": "This document, readable (assets served by this server)",
        "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
    },
}


def route_operations(routes: list[BaseRoute]) -> list[tuple[str, str]]:
    """(path, method) of every route the application serves (bare paths)."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, Mount):
            continue  # the /v1 mount holds the same routes
        if isinstance(route, WebSocketRoute):
            found.append((route.path, "websocket"))
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    found.append((route.path, method.lower()))
    return found


@functools.lru_cache(maxsize=4)
def _document(
    operations: tuple[tuple[str, str], ...], action_types: tuple[str, ...], ceiling: int
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    websockets: dict[str, Any] = {}
    for path, method in operations:
        operation = dict(OPERATIONS[(path, method)])
        if method == "websocket":  # not an HTTP operation: described beside them
            websockets[PREFIX + path] = operation
            continue
        paths.setdefault(PREFIX + path, {})[method] = {
            "operationId": _operation_id(path, method),
            **operation,
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "scoreboard",
            "version": __version__,
            "description": (
                "A Redis-first live leaderboard. Every path also answers without the /v1"
                " prefix. Errors share one envelope: `{success: false, error: {code,"
                " message, details}}`."
            ),
        },
        "paths": paths,
        "x-websockets": websockets,
        "components": {
            "schemas": {
                **SCHEMAS,
                **contract.response_schemas(),
                **_request_schemas(list(action_types), ceiling),
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "actionToken": {"type": "apiKey", "in": "header", "name": "X-Action-Token"},
            },
        },
    }


def document(routes: list[BaseRoute], settings: Settings) -> dict[str, Any]:
    """The document for these routes; KeyError names a route without an operation."""
    return _document(
        tuple(route_operations(routes)),
        tuple(sorted(settings.action_types)),
        settings.score_ceiling,
    )
