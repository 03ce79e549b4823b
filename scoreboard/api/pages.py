"""The pages the service serves: the live board (`/`) and the admin console
(`/console`). Each is one HTML file under `scoreboard/static/` with its script and
style inline, allowed by their hashes in its Content-Security-Policy and nothing else.
The console's data all come from the admin API, so the page itself is no secret."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from scoreboard.http.security_headers import CSP, page_policy

STATIC = Path(__file__).resolve().parent.parent / "static"


def page(filename: str) -> Callable[[Request], Awaitable[HTMLResponse]]:
    path = STATIC / filename

    async def serve(request: Request) -> HTMLResponse:
        html = path.read_text()
        return HTMLResponse(html, headers={CSP: page_policy(html), "cache-control": "no-store"})

    serve.__name__ = f"{path.stem}_page"
    return serve


routes = [
    Route("/", page("index.html"), methods=["GET"]),
    Route("/console", page("console.html"), methods=["GET"]),
]
