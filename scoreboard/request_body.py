"""Strict JSON bodies: one media type, no NaN/Infinity, no duplicate keys, no unknown fields.

The size limit is enforced while the body is read (see middleware.BodyLimitMiddleware).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NoReturn

from starlette.requests import ClientDisconnect, Request

from scoreboard.errors import InvalidRequest, UnsupportedMediaType


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


def parse_json(raw: bytes) -> Any:
    """UTF-8 JSON (RFC 8259 for JSON between systems), decoded by one shared decoder."""
    try:
        return _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(
            "The request body is not valid JSON", details={"reason": str(exc)[:200]}
        ) from None


async def _body(request: Request) -> bytes:
    """The whole body, straight from the ASGI messages (the size limit applies as they
    arrive)."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_object(
    request: Request, *, required: Iterable[str], optional: Iterable[str] = ()
) -> dict[str, Any]:
    """The body as a JSON object holding every required field and nothing unknown."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType()
    data = parse_json(await _body(request))
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object")
    required = set(required)
    unknown = sorted(set(data) - required - set(optional))
    missing = sorted(required - set(data))
    if unknown or missing:
        raise InvalidRequest(
            "The request body has missing or unknown fields",
            details={"missing": missing, "unknown": unknown},
        )
    return data
