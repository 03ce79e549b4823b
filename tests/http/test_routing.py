"""The router's lookup of paths without parameters takes the route Starlette's loop
would take, for every route of the service, and leaves everything else to the loop."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import Scope

from scoreboard.api.app import create_app
from scoreboard.core.settings import Settings
from scoreboard.http.routing import StaticFirstRouter, route_probe, static_routes


def _loop_choice(routes: list[BaseRoute], path: str, method: str | None) -> BaseRoute | None:
    for route in routes:
        if route.matches(route_probe(path, method))[0] is Match.FULL:
            return route
    return None


def test_every_static_path_of_the_service_finds_the_route_the_loop_finds(
    settings: Settings,
) -> None:
    app = create_app(settings)
    assert isinstance(app.router, StaticFirstRouter)
    routes = app.router.routes
    static = static_routes(routes)
    assert ("/scores/update", "POST") in static
    assert ("/leaderboard/top10", "GET") in static
    assert ("/health", "HEAD") in static
    for (path, method), route in static.items():
        assert _loop_choice(routes, path, method) is route


def test_a_path_an_earlier_route_takes_is_left_to_the_loop() -> None:
    async def first(_: Request) -> PlainTextResponse:
        return PlainTextResponse("parameter")

    async def second(_: Request) -> PlainTextResponse:
        return PlainTextResponse("static")

    routes: list[BaseRoute] = [
        Route("/a/{name}", first),
        Route("/a/b", second),
        Route("/c", second),
    ]
    assert set(static_routes(routes)) == {("/c", "GET"), ("/c", "HEAD")}


async def test_answers_are_those_of_starlettes_router() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"hello {request.url.path}")

    async def named(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["name"])

    routes: list[BaseRoute] = [Route("/x/{name}", named), Route("/x", hello, methods=["GET"])]
    # as the service mounts them: under /v1 and bare
    plain = [Mount("/v1", routes=routes), *routes]
    static_first = [Mount("/v1", app=StaticFirstRouter(routes=routes)), *routes]
    apps = {"plain": Starlette(routes=plain), "static first": Starlette(routes=static_first)}
    apps["static first"].router = StaticFirstRouter(routes=static_first)
    seen = {}
    for label, app in apps.items():
        assert isinstance(app.router, Router)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            seen[label] = [
                (r.status_code, r.text)
                for prefix in ("", "/v1")
                for r in [
                    await http.get(f"{prefix}/x"),
                    await http.post(f"{prefix}/x"),
                    await http.get(f"{prefix}/x/y"),
                    await http.get(f"{prefix}/nothing"),
                    await http.head(f"{prefix}/x"),
                ]
            ]
    assert seen["plain"] == seen["static first"]
    assert seen["plain"][0] == (200, "hello /x") and seen["plain"][1][0] == 405
    assert seen["plain"][5] == (200, "hello /v1/x")


async def test_a_path_under_v1_is_found_without_trying_the_routes(settings: Settings) -> None:
    app = create_app(settings)
    tried: list[str] = []
    real = Route.matches

    def counted(route: Route, scope: Scope) -> tuple[Match, Scope]:
        tried.append(route.path)
        return real(route, scope)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Route, "matches", counted)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            for path in ("/scores/update", "/v1/scores/update"):
                tried.clear()
                answer = await http.post(path, json={})
                assert answer.status_code == 401  # reached the route: no token
                assert tried == [], path  # one lookup, no route tried
