"""`/graphql` on the application: queries by POST, the subscription over a WebSocket
speaking graphql-transport-ws. No in-page IDE: the pages' Content Security
Policy allows no third-party script; the schema is in the docs and, where
introspection is on, asked of the server."""

from __future__ import annotations

import functools

import msgspec
from cross_web import HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from scoreboard.api.common import services
from scoreboard.api.graphql.schema import CACHED_QUERIES, Context, build_schema
from scoreboard.core.contract import GraphQLRequest
from scoreboard.core.errors import InvalidRequest
from scoreboard.http.bodies import read_body


class _View(GraphQL[Context, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return Context(svc=services(request), request=request, response=response)


def _view(request: Request | WebSocket) -> _View:
    """The application's one view (its schema depends on a setting)."""
    state = request.app.state
    view: _View | None = getattr(state, "graphql_view", None)
    if view is None:
        schema = build_schema(services(request).settings.graphql_introspection)
        view = _View(
            schema,
            graphql_ide=None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=services(request).settings.ws_max_subscriptions,
        )
        state.graphql_view = view
    return view


def _refuse_subscription(body: GraphQLRequest) -> None:
    """A subscription is followed over the WebSocket (graphql-transport-ws), not by a
    POST."""
    name = body.operationName if isinstance(body.operationName, str) else None
    if _is_subscription(body.query, name):
        raise InvalidRequest(
            "Subscriptions are served over a WebSocket to /graphql (graphql-transport-ws)",
            details={"reason": "subscription_over_http"},
        )


@functools.lru_cache(maxsize=CACHED_QUERIES)
def _is_subscription(query: str, name: str | None) -> bool:
    """(A query that does not parse is left to the view, which says why.)"""
    try:
        document = parse(query)
    except GraphQLError:
        return False
    operation = get_operation_ast(document, name)
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


async def graphql_http(request: Request) -> Response:
    """A malformed request (not JSON, not an object with a `query`) is refused in the
    service's envelope, as on every route; the query itself is GraphQL's to judge."""
    body = await read_body(request, GraphQLRequest)
    _refuse_subscription(body)
    checked = msgspec.json.encode(body)

    async def replay() -> Message:  # the body, read once already, for the view
        return {"type": "http.request", "body": checked, "more_body": False}

    try:
        return await _view(request).run(Request(request.scope, replay))
    except HTTPException as refused:  # an operation the document lacks, a mutation, ...
        raise InvalidRequest(refused.reason, details={"reason": "graphql_request"}) from None


async def graphql_ws(websocket: WebSocket) -> None:
    await _view(websocket).run(websocket)


routes: list[BaseRoute] = [
    Route("/graphql", graphql_http, methods=["POST"]),
    WebSocketRoute("/graphql", graphql_ws),
]
