"""Strict JSON bodies: one media type, no NaN/Infinity, no duplicate keys, no unknown fields.

The size limit is enforced while the body is read (see middleware.BodyLimitMiddleware).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, NoReturn, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request

from scoreboard.core.contract import Body, field_names
from scoreboard.core.errors import InvalidRequest, UnsupportedMediaType

B = TypeVar("B", bound=Body)


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
_NUL = re.compile("\x00")


def _holds(pattern: re.Pattern[str], value: Any) -> bool:
    """Whether a string anywhere in `value` (keys included) matches `pattern`."""
    if isinstance(value, str):
        return pattern.search(value) is not None
    if isinstance(value, dict):
        return any(_holds(pattern, k) or _holds(pattern, v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds(pattern, item) for item in value)
    return False


def parse_json(raw: bytes) -> Any:
    """UTF-8 JSON (RFC 8259 for JSON between systems), decoded by one shared decoder.
    Every string must hold Unicode scalar values only, and no NUL: PostgreSQL, where
    what is accepted is persisted, cannot store U+0000 in text or JSON. Both can arrive
    only through a \\u escape (UTF-8 cannot encode a lone surrogate, and JSON forbids a
    raw control character), so only such bodies are searched."""
    try:
        data = _DECODER.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(
            "The request body is not valid JSON", details={"reason": _reason(exc)}
        ) from None
    if b"\\u" not in raw:
        return data
    if _holds(_SURROGATE, data):
        raise InvalidRequest(
            "The request body is not valid JSON",
            details={"reason": "a string holds a lone surrogate (not a Unicode character)"},
        )
    if b"\\u0000" in raw and _holds(_NUL, data):
        raise InvalidRequest(
            "A string in the request body holds a NUL character (\\u0000)",
            details={"reason": "a string holds a NUL character, which cannot be stored"},
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


_AT = " - at `$."
_UNKNOWN = "Object contains unknown field `"


def _invalid(exc: msgspec.ValidationError) -> InvalidRequest:
    """msgspec's reason, with the field it names as `details.field` (`action_data.level`)."""
    text = str(exc)
    reason, _, path = text.partition(_AT)
    field = path.rstrip("`")
    if reason.startswith(_UNKNOWN):
        unknown = reason[len(_UNKNOWN) :].rstrip("`")
        field = f"{field}.{unknown}" if field else unknown
    reason = reason[:1].lower() + reason[1:]
    return InvalidRequest(
        f"{field}: {reason}" if field else f"The request body: {reason}",
        details={"field": field} if field else {},
    )


async def read_body(request: Request, body: type[B]) -> B:
    """The body as the Struct `body` declares it: its fields, their types and their
    constraints (missing and unknown fields are all named at once)."""
    required, optional = field_names(body)
    data = await read_object(request, required=required, optional=optional)
    try:
        return msgspec.convert(data, body, strict=True)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
