"""The spec's envelope: `{"success": true, "data": …}` or `{"success": false, "error": …}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

from scoreboard.core.errors import ScoreboardError


def ok(data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": True, "data": data}, status_code=status, headers=headers)


def error_body(exc: ScoreboardError) -> dict[str, Any]:
    return {
        "success": False,
        "error": {"code": exc.code, "message": exc.message, "details": exc.details},
    }


def failure(exc: ScoreboardError) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=exc.status, headers=exc.headers)
