"""Strict JSON bodies: one media type, no NaN/Infinity, no duplicate keys, no unknown fields.

The size limit is enforced while the body is read (see middleware.BodyLimitMiddleware).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, NoReturn

from starlette.requests import ClientDisconnect, Request

from scoreboard.errors import InvalidRequest, UnsupportedMediaType


class _Refused(ValueError):
    """A reason of ours, fit to show the client."""


def _reject_constant(name: str) -> NoReturn:
    raise _Refused(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused("a key appears twice in one object")
        result[key] = value
    return result


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_unique_keys)


def _reason(exc: Exception) -> str:
    """Why the body was refused, in our own words (never Python's internals)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}, column {exc.colno}"
    if isinstance(exc, _Refused):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "the body is not UTF-8"
    if isinstance(exc, RecursionError):
        return "the body is nested too deeply"
    return "a number in the body has too many digits"  # int() past 4300 digits


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def parse_json(raw: bytes) -> Any:
    """UTF-8 JSON (RFC 8259 for JSON between systems), decoded by one shared decoder.
    Every string must hold Unicode scalar values only: a lone surrogate can arrive
    only through a \\u escape (UTF-8 cannot encode one), so only such bodies are searched."""
    try:
        data = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(
            "The request body is not valid JSON", details={"reason": _reason(exc)}
        ) from None
    if b"\\u" in raw and _has_lone_surrogate(data):
        raise InvalidRequest(
            "The request body is not valid JSON",
            details={"reason": "a string holds a lone surrogate (not a Unicode character)"},
        )
    return data


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
