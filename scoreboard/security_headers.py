"""Security headers on every answer, and the Content-Security-Policy of the pages.

Every response says `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`
and may not be framed (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`). An
answer that is not a page runs nothing (`default-src 'none'`). A page sends its own
policy (`page_policy`): its inline scripts and styles allowed by their SHA-256 and
nothing else inline, the rest from this origin only, so an injected `<script>` or
event handler does not run.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "content-security-policy"
NOT_A_PAGE = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
ALWAYS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.lru_cache(maxsize=16)
def page_policy(html: str) -> str:
    """The policy of one page: its inline `<script>` and `<style>` blocks by hash."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        hashes[kind].append(_digest(body))
    return "; ".join(
        (
            "default-src 'none'",
            " ".join(["script-src 'self'", *hashes["script"]]),
            " ".join(["style-src 'self'", *hashes["style"]]),
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers[name] = value
                if CSP not in headers:
                    headers[CSP] = NOT_A_PAGE
            await send(message)

        await self.app(scope, receive, send_with_headers)
