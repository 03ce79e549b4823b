"""What every handler needs: the process's services, the caller's identity and address."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from starlette.requests import HTTPConnection

from scoreboard.api.services import Services
from scoreboard.auth.tokens import AccessClaims
from scoreboard.core.errors import InvalidRequest, InvalidToken
from scoreboard.core.ratelimit import rate_headers
from scoreboard.http.clientip import client_ip


def services(conn: HTTPConnection) -> Services:
    return cast(Services, conn.app.state.services)


def address(conn: HTTPConnection) -> str:
    return client_ip(conn, services(conn).settings.trusted_proxies)


async def require_access(conn: HTTPConnection) -> AccessClaims:
    """The verified access token from `Authorization: Bearer …`."""
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("A bearer access token is required")
    return await services(conn).sessions.authenticate(token.strip())


async def audit(
    conn: HTTPConnection,
    event_type: str,
    *,
    user_id: str | None = None,
    result: str = "",
    details: dict[str, Any] | None = None,
    flood: bool = False,
) -> None:
    """A security event of this request, with the caller's address and user agent."""
    await services(conn).audit.record(
        event_type,
        user_id=user_id,
        ip=address(conn),
        user_agent=conn.headers.get("user-agent", ""),
        result=result,
        details=details,
        flood=flood,
    )


def parse_user_id(raw: str) -> str:
    """A user id given by the client (path or query), which must be a UUID."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise InvalidRequest("user_id must be a UUID", details={"field": "user_id"}) from None


_INSTANT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def query_instant(conn: HTTPConnection, name: str) -> datetime | None:
    """An RFC 3339 date-time in the query (with its offset), or None when absent. A leap
    second counts as the second before it; year 0 as the earliest instant."""
    raw = conn.query_params.get(name)
    if raw is None:
        return None
    match = _INSTANT.match(raw)
    try:
        if match is None:
            raise ValueError(raw)
        year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
        fraction, offset = match.group(7) or "", match.group(8).upper()
        zone = UTC if offset == "Z" else datetime.strptime(offset, "%z").tzinfo
        micros = int((fraction[1:] + "000000")[:6]) if fraction else 0
        if year == 0:
            return datetime.min.replace(tzinfo=UTC)
        return datetime(year, month, day, hour, minute, min(second, 59), micros, tzinfo=zone)
    except ValueError:
        raise InvalidRequest(
            f"{name} must be an RFC 3339 date-time with its offset, such as 2026-12-04T10:30:00Z",
            details={"field": name},
        ) from None


def path_user_id(conn: HTTPConnection) -> str:
    """The `{user_id}` path parameter."""
    return parse_user_id(conn.path_params["user_id"])


def query_int(conn: HTTPConnection, name: str, default: int, low: int, high: int) -> int:
    raw = conn.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidRequest(
            f"{name} must be a whole number from {low} to {high}", details={"field": name}
        )
    return int(raw)


async def read_quota(conn: HTTPConnection, svc: Services | None = None) -> dict[str, str]:
    """Counts one public read against the per-address rule; returns its headers."""
    svc = svc or services(conn)
    key = svc.keys.rate_limit("leaderboard", client_ip(conn, svc.settings.trusted_proxies))
    decision = await svc.read_limiter.hit(key, svc.settings.rate_limit_leaderboard)
    return rate_headers(decision)
