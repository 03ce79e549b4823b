from __future__ import annotations

import ipaddress

from starlette.requests import Request

from scoreboard.http.clientip import client_ip

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


def test_the_peer_is_the_client_without_trusted_proxies() -> None:
    assert client_ip(_request("203.0.113.5", "1.2.3.4"), ()) == "203.0.113.5"


def test_an_untrusted_peer_cannot_choose_its_address() -> None:
    assert client_ip(_request("203.0.113.5", "1.2.3.4"), PROXIES) == "203.0.113.5"


def test_the_rightmost_untrusted_hop_behind_trusted_proxies() -> None:
    request = _request("10.0.0.2", "6.6.6.6, 198.51.100.9, 10.0.0.7")
    assert client_ip(request, PROXIES) == "198.51.100.9"


def test_a_malformed_hop_falls_back_to_the_peer() -> None:
    assert client_ip(_request("10.0.0.2", "not-an-ip"), PROXIES) == "10.0.0.2"


def test_only_proxies_in_the_chain_gives_the_peer() -> None:
    assert client_ip(_request("10.0.0.2", "10.1.1.1"), PROXIES) == "10.0.0.2"
