"""A router that finds a path without parameters by one dictionary lookup.

Starlette's router tries every route in order, a regular expression each: the score
update, the action token and the top 10 sat behind the mount of `/v1` and a dozen
routes, a tenth of the server's time on a top-10 read. The app's router and the one
mounted at `/v1` are both this one. It keeps the same order and answers: a path is
looked up first among the routes without parameters that no earlier route would take
for the same method, and everything else (parameters, another method's 405, redirects,
404) goes through Starlette's loop unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send


def route_probe(path: str, method: str | None) -> Scope:
    if method is None:
        return {"type": "websocket", "path": path, "root_path": "", "path_params": {}}
    return {"type": "http", "path": path, "method": method, "root_path": "", "path_params": {}}


def static_routes(
    routes: Sequence[BaseRoute],
) -> dict[tuple[str, str | None], Route | WebSocketRoute]:
    """(path, method or None for a WebSocket) -> the route Starlette's loop would take."""
    found: dict[tuple[str, str | None], Route | WebSocketRoute] = {}
    for index, route in enumerate(routes):
        methods: list[str | None]
        if isinstance(route, Route) and not route.param_convertors:
            methods = [*sorted(route.methods or {"GET"})]
        elif isinstance(route, WebSocketRoute) and not route.param_convertors:
            methods = [None]
        else:
            continue
        for method in methods:
            probe = route_probe(route.path, method)
            earlier = any(other.matches(probe)[0] is Match.FULL for other in routes[:index])
            if not earlier and route.matches(probe)[0] is Match.FULL:
                found.setdefault((route.path, method), route)
    return found


class StaticFirstRouter(Router):
    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes=routes, **kwargs)
        self._static = static_routes(self.routes)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            method = scope["method"] if kind == "http" else None
            # under a mount (`/v1`), the path below it, as Starlette's routes match it
            path = get_route_path(scope) if scope.get("root_path") else scope["path"]
            route = self._static.get((path, method))
            if route is not None:
                # what the route's own `matches` would add: found by its exact path and
                # method, it matches in full and takes no parameters
                if "router" not in scope:
                    scope["router"] = self
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = dict(scope.get("path_params", {}))
                await route.handle(scope, receive, send)
                return
        await super().app(scope, receive, send)
