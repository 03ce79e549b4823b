"""What every handler needs: the process's services, the caller's identity and address."""

from __future__ import annotations

from typing import cast

from starlette.requests import HTTPConnection

from scoreboard.clientip import client_ip
from scoreboard.errors import InvalidToken
from scoreboard.jwt_tokens import AccessClaims
from scoreboard.services import Services


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
