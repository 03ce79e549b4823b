"""Security headers on every answer, and the Content-Security-Policy of the pages.

Every response says `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`
and may not be framed (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`), but for the
embeddable board, whose policy names the origins that may frame it. An
answer that is not a page runs nothing (`default-src 'none'`). A page sends its own
policy (`page_policy`): its inline scripts and styles allowed by their SHA-256 and
nothing else inline, the rest from this origin only, so an injected `<script>` or
event handler does not run. `secured` adds them to each response (the request-id
middleware calls it, in the one wrapper every response passes through).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

CSP = "content-security-policy"
NOT_A_PAGE = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
ALWAYS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
_CSP_RAW = CSP.encode()
_NOT_A_PAGE_RAW = (_CSP_RAW, NOT_A_PAGE.encode())
_ALWAYS_RAW = [(name.encode(), value.encode()) for name, value in ALWAYS.items()]
_FRAMEABLE_RAW = [header for header in _ALWAYS_RAW if header[0] != b"x-frame-options"]
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.lru_cache(maxsize=16)
def page_policy(html: str, frame_ancestors: str = "'none'") -> str:
    """The policy of one page: its inline `<script>` and `<style>` blocks by hash, and
    who may frame it (nobody, unless the page is made to be embedded)."""
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
            f"frame-ancestors {frame_ancestors}",
            "base-uri 'none'",
        )
    )


def secured(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A response's raw headers with the security headers added (raw tuples: this
    runs for every response, where building a headers object is measurable)."""
    policy = next((value for name, value in headers if name == _CSP_RAW), None)
    if policy is None:
        headers.append(_NOT_A_PAGE_RAW)
        headers.extend(_ALWAYS_RAW)
    elif b"frame-ancestors 'none'" in policy:
        headers.extend(_ALWAYS_RAW)
    else:  # a page made to be framed: its policy's frame-ancestors says by whom
        headers.extend(_FRAMEABLE_RAW)
    return headers
