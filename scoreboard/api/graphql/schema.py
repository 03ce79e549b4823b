"""`/graphql`'s schema: read-only queries over the boards and a subscription to a
ranking, fed by the same live feeds as SSE and the WebSocket. Writes stay REST (the
action-token flow needs its headers and its retry rule).

Each top-level field counts one read against the per-address read limit
(`SCOREBOARD_RATE_LIMIT_LEADERBOARD`), as one REST read does; a query may hold at most
`MAX_FIELDS` aliased fields, `MAX_DEPTH` levels and `MAX_TOKENS` tokens, so one request
cannot ask for more than a bounded amount of work. Errors carry the REST error's code
(and details) in `extensions`; anything unexpected is masked.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import strawberry
from graphql.error import GraphQLError
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, Info

from scoreboard.api import rankings
from scoreboard.api.common import parse_user_id, read_quota
from scoreboard.api.graphql.types import (
    SCALARS,
    Around,
    Board,
    Entry,
    LeaderboardUpdate,
    PlayerStandings,
    Ranking,
)
from scoreboard.api.leaderboard import MAX_OFFSET, MAX_PAGE, MAX_RADIUS
from scoreboard.api.services import Services
from scoreboard.core.errors import InvalidRequest, RateLimitExceeded, ScoreboardError
from scoreboard.core.periods import ALL_TIME
from scoreboard.http.clientip import client_ip
from scoreboard.storage.keys import DEFAULT_BOARD

log = logging.getLogger("scoreboard.graphql")

MAX_DEPTH = 6
MAX_FIELDS = 10
MAX_TOKENS = 1000
TICK_SECONDS = 5.0
CACHED_QUERIES = 256


@dataclass
class Context:
    svc: Services
    request: HTTPConnection
    response: Response | WebSocket


Of = Info[Context, None]


async def _read(info: Of) -> None:
    """One read against the address's limit; over it, the HTTP answer is 429 with
    Retry-After, as a REST read's would be."""
    context = info.context
    try:
        headers = await read_quota(context.request, context.svc)
    except RateLimitExceeded as refused:
        if isinstance(context.response, Response):
            context.response.status_code = 429
            context.response.headers.update(refused.headers)
        raise
    if isinstance(context.response, Response):
        context.response.headers.update(headers)


def _bounded(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidRequest(
            f"{name} must be a whole number from {low} to {high}", details={"field": name}
        )
    return value


async def _ranking(
    info: Of, board: str = DEFAULT_BOARD, period: str = ALL_TIME, limit: int = 10, offset: int = 0
) -> Ranking:
    limit = _bounded("limit", limit, 1, MAX_PAGE)
    offset = _bounded("offset", offset, 0, MAX_OFFSET)
    await _read(info)
    return Ranking.of(await rankings.ranking(info.context.svc, board, period, offset, limit))


async def _boards(info: Of) -> list[Board]:
    await _read(info)
    return [Board.of(board) for board in rankings.boards(info.context.svc)]


async def _leaderboard(
    info: Of, board: str = DEFAULT_BOARD, period: str = ALL_TIME, limit: int = 10, offset: int = 0
) -> list[Entry]:
    return (await _ranking(info, board, period, limit, offset)).entries


async def _around(
    info: Of,
    user_id: strawberry.ID,
    board: str = DEFAULT_BOARD,
    period: str = ALL_TIME,
    radius: int = 5,
) -> Around:
    player = parse_user_id(str(user_id))
    radius = _bounded("radius", radius, 0, MAX_RADIUS)
    await _read(info)
    return Around.of(await rankings.around(info.context.svc, board, period, player, radius))


async def _player(info: Of, user_id: strawberry.ID, board: str = DEFAULT_BOARD) -> PlayerStandings:
    player = parse_user_id(str(user_id))
    await _read(info)
    return PlayerStandings.of(await rankings.standings(info.context.svc, board, player))


async def _history(
    info: Of, board: str, period_id: str, limit: int = 10, offset: int = 0
) -> Ranking:
    limit = _bounded("limit", limit, 1, MAX_PAGE)
    offset = _bounded("offset", offset, 0, MAX_OFFSET)
    await _read(info)
    return Ranking.of(await rankings.closed(info.context.svc, board, period_id, offset, limit))


@strawberry.type
class Query:
    boards: list[Board] = strawberry.field(
        resolver=_boards, description="Every board, its action types, current periods and season"
    )
    leaderboard: list[Entry] = strawberry.field(
        resolver=_leaderboard,
        description="The entries of a page of a ranking (period: 'all' or a period kind)",
    )
    ranking: Ranking = strawberry.field(
        resolver=_ranking, description="A page of a ranking with its labels and totals"
    )
    around: Around = strawberry.field(
        resolver=_around, description="A player and the entries `radius` places either side"
    )
    player: PlayerStandings = strawberry.field(
        resolver=_player, description="A player's score and rank in every ranking of a board"
    )
    history: Ranking = strawberry.field(
        resolver=_history,
        description="A closed period's or ended season's final standings (daily:2026-11-30,"
        " weekly:2026-W48, monthly:2026-11, season:3)",
    )


async def _follow(
    info: Of, board: str = DEFAULT_BOARD, period: str = ALL_TIME
) -> AsyncGenerator[LeaderboardUpdate, None]:
    svc = info.context.svc
    ip = client_ip(info.context.request, svc.settings.trusted_proxies)
    most = svc.settings.sse_max_connections_per_ip  # one cap with SSE streams
    async with svc.live.stream(board, period, ip, most) as (subscriber, current):
        yield LeaderboardUpdate.of(board, period, current.data)
        while not svc.live.closing:
            message = await subscriber.next(TICK_SECONDS)
            if message is not None:
                yield LeaderboardUpdate.of(board, period, message.data)


@strawberry.type
class Subscription:
    leaderboard: AsyncGenerator[LeaderboardUpdate, None] = strawberry.subscription(
        resolver=_follow,
        description="A ranking's top as it stands, then after each change (at most a few a"
        " second), from the same live feed as SSE and the WebSocket",
    )


class ServiceErrors(MaskErrors):
    """A ScoreboardError keeps its message, with its code and details in `extensions`
    (`RATE_LIMIT_EXCEEDED`, `BOARD_NOT_FOUND`, ...); GraphQL's own errors (a syntax or
    validation error) pass as they are; anything else is masked and logged."""

    def __init__(self) -> None:
        super().__init__(error_message="An unexpected error occurred")

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._one(error) for error in errors]

    def _one(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            return error
        if isinstance(original, ScoreboardError):
            extensions: dict[str, Any] = {"code": original.code}
            if original.details:
                extensions["details"] = original.details
            return GraphQLError(
                original.message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions=extensions,
            )
        log.error("graphql resolver failed", exc_info=original)
        masked = self.anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_ERROR"}
        return masked


# The depth and alias limits' validation rules, made once: the validation cache keys on
# the rules, so rules made afresh per request would never hit it
_LIMITS = [
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_FIELDS).validation_rules,
]


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Not logged here: a refusal is the client's, and ServiceErrors logged what was
        not."""


def build_schema(introspection: bool) -> strawberry.Schema:
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: AddValidationRules(_LIMITS),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        ServiceErrors,
        # a game asks the same few queries over and over: parsed and validated once
        lambda: ParserCache(maxsize=CACHED_QUERIES),
        lambda: ValidationCache(maxsize=CACHED_QUERIES),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    config = StrawberryConfig(scalar_map=SCALARS)
    return _Schema(query=Query, subscription=Subscription, extensions=extensions, config=config)
