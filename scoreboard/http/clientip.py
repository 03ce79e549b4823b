"""The client's address: the socket peer, or the right-most untrusted forwarded hop."""

from __future__ import annotations

import ipaddress

from starlette.requests import HTTPConnection

from scoreboard.core.settings import IpNetwork

UNKNOWN = "unknown"


def client_ip(conn: HTTPConnection, trusted: tuple[IpNetwork, ...]) -> str:
    client = conn.scope.get("client")  # (host, port); read as is, without an Address
    peer = client[0] if client else UNKNOWN
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in conn.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _is_address(hop):
            return peer
        if not _is_trusted(hop, trusted):
            return hop
    return peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
