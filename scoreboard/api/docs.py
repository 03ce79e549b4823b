"""`/openapi.json` and `/docs`: the API document, and Swagger UI to read it, its assets
served from the swagger-ui-py package (no CDN: the page works offline)."""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from scoreboard.api.common import services
from scoreboard.http.openapi import document
from scoreboard.http.security_headers import CSP, page_policy

ASSETS = Path(swagger_ui.__file__).resolve().parent / "static"
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>scoreboard API</title>
  <link rel="stylesheet" href="{base}/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{base}/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{base}/openapi.json", dom_id: "#swagger-ui"}});
  </script>
</body>
</html>
"""


def _base(request: Request) -> str:
    """'' or '/v1', as the page was asked for."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


async def openapi(request: Request) -> Response:
    return JSONResponse(document(request.app.routes, services(request).settings))


async def docs(request: Request) -> Response:
    html = PAGE.format(base=_base(request))
    return HTMLResponse(html, headers={CSP: page_policy(html)})


routes = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Mount("/docs/assets", app=StaticFiles(directory=ASSETS), name="docs-assets"),
]
