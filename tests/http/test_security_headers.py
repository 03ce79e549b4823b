"""Security headers on every page and answer, and redirects that never name another
host (was: none of these headers anywhere, the live page with its password form could
be framed by any site, and `Host: evil.example` came back in a redirect's Location)."""

from __future__ import annotations

import httpx
import pytest

from scoreboard.http.security_headers import page_policy

PATHS = ["/", "/docs", "/openapi.json", "/v1/leaderboard/top10", "/health", "/no-such-route"]


@pytest.mark.parametrize("path", PATHS)
async def test_every_answer_carries_the_headers(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


@pytest.mark.parametrize("path", ["/", "/docs", "/v1/docs"])
async def test_a_page_allows_its_own_inline_code_by_hash_only(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    policy = response.headers["content-security-policy"]
    assert policy == page_policy(response.text)
    assert "script-src 'self' 'sha256-" in policy
    tampered = response.text.replace("<script>", "<script>alert(1);", 1)
    assert page_policy(tampered) != policy


async def test_a_trailing_slash_redirect_never_names_the_host_header(
    client: httpx.AsyncClient,
) -> None:
    for path, target in (
        ("/v1/leaderboard/top10/", "/v1/leaderboard/top10"),
        ("/leaderboard/top10/?x=1", "/leaderboard/top10?x=1"),
    ):
        response = await client.get(path, headers={"Host": "evil.example"})
        assert response.status_code == 307
        assert response.headers["location"] == target
    missing = await client.get("/v1/nothing-here/", headers={"Host": "evil.example"})
    assert missing.status_code == 404 and "evil" not in missing.headers.get("location", "")
    followed = await client.get("/v1/leaderboard/top10/", follow_redirects=True)
    assert followed.status_code == 200
