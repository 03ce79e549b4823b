"""The pages the service serves: the live board (`/`), the same board made to be framed
(`/embed`) and the admin console (`/console`). Each is one HTML file under
`scoreboard/static/` with its script and style inline, allowed by their hashes in its
Content-Security-Policy and nothing else. The console's data all come from the admin
API, so the page itself is no secret.

Only `/embed` may be framed, by the server's own pages and the origins of
SCOREBOARD_EMBED_ORIGINS; the board pages take a signed-in player's access token by
`postMessage` from those origins only (named in the page's `scoreboard-token-origins`
meta element)."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from scoreboard.api.common import services
from scoreboard.http.security_headers import CSP, page_policy

STATIC = Path(__file__).resolve().parent.parent / "static"
_ORIGINS_META = '<meta name="scoreboard-token-origins" content="">'
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_origin(origin: str) -> str:
    """An origin as browsers serialise it (no default port): `https://a.example:443`
    is `https://a.example`."""
    parts = urlsplit(origin)
    if parts.port is not None and parts.port == _DEFAULT_PORTS.get(parts.scheme):
        return f"{parts.scheme}://{parts.hostname}"
    return origin


def page(filename: str, *, frameable: bool = False) -> Callable[[Request], Awaitable[HTMLResponse]]:
    path = STATIC / filename

    async def serve(request: Request) -> HTMLResponse:
        origins = services(request).settings.embed_origins
        listed = [canonical_origin(origin) for origin in origins if origin != "*"]
        text = path.read_text().replace(
            _ORIGINS_META,
            _ORIGINS_META.replace('content=""', f'content="{html.escape(" ".join(listed))}"'),
        )
        ancestors = "'none'"
        if frameable:
            ancestors = "*" if "*" in origins else " ".join(["'self'", *listed])
        policy = page_policy(text, ancestors)
        return HTMLResponse(text, headers={CSP: policy, "cache-control": "no-store"})

    serve.__name__ = f"{path.stem}_page"
    return serve


routes = [
    Route("/", page("index.html"), methods=["GET"]),
    Route("/embed", page("index.html", frameable=True), methods=["GET"]),
    Route("/console", page("console.html"), methods=["GET"]),
]
