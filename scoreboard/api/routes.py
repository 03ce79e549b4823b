"""HTTP routes, one module per area; `all_routes()` lists them once for both prefixes."""

from __future__ import annotations

from starlette.routing import BaseRoute

from scoreboard.api import (
    admin,
    auth,
    boards,
    docs,
    health,
    leaderboard,
    live,
    metrics,
    pages,
    scores,
)
from scoreboard.api.graphql import route as graphql_route


def all_routes() -> list[BaseRoute]:
    return [
        *health.routes,
        *metrics.routes,
        *auth.routes,
        *scores.routes,
        *leaderboard.routes,
        *boards.routes,
        *live.routes,
        *pages.routes,
        *admin.routes,
        *graphql_route.routes,
        *docs.routes,
    ]
