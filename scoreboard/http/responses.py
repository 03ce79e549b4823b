"""The spec's envelope: `{"success": true, "data": …}` or `{"success": false, "error": …}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from scoreboard.core.contract import encode, envelope
from scoreboard.core.errors import ScoreboardError

JSON = "application/json"


def ok(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """The success envelope around `data` (the Structs of `scoreboard.core.contract`,
    or plain values), encoded by msgspec."""
    return Response(envelope(data), status_code=status, headers=headers, media_type=JSON)


def error_body(exc: ScoreboardError) -> dict[str, Any]:
    return {
        "success": False,
        "error": {"code": exc.code, "message": exc.message, "details": exc.details},
    }


def failure(exc: ScoreboardError) -> Response:
    return Response(
        encode(error_body(exc)), status_code=exc.status, headers=exc.headers, media_type=JSON
    )
