"""`/auth/*` through the app, with real Redis and PostgreSQL behind it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
import warnings
from typing import Any

import httpx
import jwt
import pytest

from scoreboard.api.app import create_app
from scoreboard.api.services import Services
from scoreboard.auth.tokens import ACCESS_AUDIENCE, ISSUER, REFRESH_AUDIENCE
from scoreboard.core.settings import Settings
from tests.auth_helpers import PASSWORD, bearer, error_code, login, new_username, register
from tests.conftest import ACCESS_SECRET, REFRESH_SECRET


async def test_register_login_refresh_logout(client: httpx.AsyncClient) -> None:
    user = await register(client)
    tokens = await login(client, user["username"])
    assert tokens["user_id"] == user["user_id"]
    assert tokens["expires_in"] == 3600
    assert set(tokens) >= {"access_token", "refresh_token", "user_id", "expires_in"}

    refreshed = (
        await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    assert refreshed["success"] is True
    assert refreshed["data"]["refresh_token"] != tokens["refresh_token"]

    response = await client.post(
        "/v1/auth/logout", headers=bearer(refreshed["data"]["access_token"])
    )
    assert response.status_code == 200
    again = await client.post("/v1/auth/logout", headers=bearer(refreshed["data"]["access_token"]))
    assert again.status_code == 401 and error_code(again) == "INVALID_TOKEN"
    dead = await client.post(
        "/v1/auth/refresh", json={"refresh_token": refreshed["data"]["refresh_token"]}
    )
    assert dead.status_code == 401 and error_code(dead) == "INVALID_TOKEN"


async def test_bare_and_v1_paths_both_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"success": True, "data": {"status": "ok"}}
    assert (await client.get("/v1/health")).status_code == 200


async def test_health_detailed_reports_both_stores(client: httpx.AsyncClient) -> None:
    data = (await client.get("/v1/health/detailed")).json()["data"]
    assert data["mode"] == "external"
    assert data["components"]["redis"]["status"] == "up"
    assert data["components"]["postgres"]["status"] == "up"
    assert data["components"]["postgres"]["version"]


@pytest.mark.parametrize(
    "username",
    [
        "ab",
        "x" * 33,
        "bad name",
        "semi;colon",
        "\u0430lice",  # Cyrillic a
        "tab\there",
        "nul\x00name",
        "rtl\u202ename",
        "zwj\u200dname",
        42,
        None,
    ],
)
async def test_bad_usernames_are_refused(client: httpx.AsyncClient, username: object) -> None:
    response = await client.post(
        "/auth/register",
        json={
            "username": username,
            "email": f"{uuid.uuid4().hex}@example.com",
            "password": PASSWORD,
        },
    )
    assert response.status_code == 400 and error_code(response) == "INVALID_REQUEST"


async def test_usernames_are_unique_ignoring_case_and_width(client: httpx.AsyncClient) -> None:
    name = new_username()
    await register(client, name)
    for variant in (name.upper(), "".join(chr(ord(c) + 0xFEE0) for c in name)):
        response = await client.post(
            "/auth/register",
            json={
                "username": variant,
                "email": f"{uuid.uuid4().hex}@example.com",
                "password": PASSWORD,
            },
        )
        assert response.status_code == 409 and error_code(response) == "CONFLICT"
        assert response.json()["error"]["details"] == {"field": "username"}


async def test_email_is_unique(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/register",
        json={"username": new_username(), "email": user["email"].upper(), "password": PASSWORD},
    )
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"field": "email"}


async def test_password_limits(client: httpx.AsyncClient) -> None:
    async def attempt(password: str) -> httpx.Response:
        name = new_username()
        return await client.post(
            "/auth/register",
            json={"username": name, "email": f"{name}@example.com", "password": password},
        )

    assert (await attempt("a" * 72)).status_code == 201
    for too_long in ("a" * 73, "é" * 37):
        response = await attempt(too_long)
        assert response.status_code == 400 and error_code(response) == "INVALID_REQUEST"
    assert (await attempt("short")).status_code == 400


async def test_stored_hash_is_bcrypt(client: httpx.AsyncClient, services: Services) -> None:
    user = await register(client)
    stored = await services.pool.fetchval(
        "SELECT password_hash FROM users WHERE id = $1::uuid", user["user_id"]
    )
    assert stored.startswith("$2b$04$")


async def test_overlong_login_password_is_401_not_500(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.post(
        "/auth/login", json={"username": user["username"], "password": "p" * 100}
    )
    assert response.status_code == 401 and error_code(response) == "INVALID_CREDENTIALS"


async def test_unknown_user_and_wrong_password_look_the_same(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[str | None] = []
    real_verify = services.sessions._hasher.verify

    async def counting_verify(password: str, hashed: str | None) -> bool:
        checks.append(hashed)
        return await real_verify(password, hashed)

    monkeypatch.setattr(services.sessions._hasher, "verify", counting_verify)
    user = await register(client)
    unknown = await client.post(
        "/auth/login", json={"username": new_username(), "password": PASSWORD}
    )
    wrong = await client.post(
        "/auth/login", json={"username": user["username"], "password": "wrong password"}
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.content == wrong.content
    varying = {"x-request-id", "date"}
    assert {k: v for k, v in unknown.headers.items() if k not in varying} == {
        k: v for k, v in wrong.headers.items() if k not in varying
    }
    assert len(checks) == 2 and checks[0] is None and checks[1] is not None


async def test_refresh_reuse_revokes_the_family(client: httpx.AsyncClient) -> None:
    user = await register(client)
    first = await login(client, user["username"])
    second = (
        await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()["data"]
    replay = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401 and error_code(replay) == "INVALID_TOKEN"
    descendant = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert descendant.status_code == 401
    revoked_access = await client.post("/auth/logout", headers=bearer(second["access_token"]))
    assert revoked_access.status_code == 401
    other_session = await login(client, user["username"])
    ok = await client.post("/auth/logout", headers=bearer(other_session["access_token"]))
    assert ok.status_code == 200


def _forge(claims: dict[str, object], secret: str, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short key for HS512 is the point of one case
        return jwt.encode(claims, secret, algorithm=algorithm)


def _claims(user_id: str, **overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "sid": str(uuid.uuid4()),
        "jti": str(uuid.uuid4()),
        "iss": ISSUER,
        "aud": ACCESS_AUDIENCE,
        "name": "someone",
        "typ": "access",
        "role": "player",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _alg_none(claims: dict[str, object]) -> str:
    import base64
    import json

    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_bad_access_tokens_are_401(client: httpx.AsyncClient) -> None:
    user = await register(client)
    tokens = await login(client, user["username"])
    uid = user["user_id"]
    good = _claims(uid)
    cases = {
        "missing": None,
        "garbage": "not-a-jwt",
        "wrong secret": _forge(good, "another-secret-that-is-long-enough-000"),
        "alg none": _alg_none(good),
        "hs512": _forge(good, ACCESS_SECRET, "HS512"),
        "expired": _forge(
            _claims(uid, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), ACCESS_SECRET
        ),
        "future iat": _forge(_claims(uid, iat=int(time.time()) + 3600), ACCESS_SECRET),
        "wrong issuer": _forge(_claims(uid, iss="evil"), ACCESS_SECRET),
        "wrong audience": _forge(_claims(uid, aud=REFRESH_AUDIENCE), ACCESS_SECRET),
        "no jti": _forge(_claims(uid, jti=None), ACCESS_SECRET),
        "no exp": _forge(_claims(uid, exp=None), ACCESS_SECRET),
        "refresh typ": _forge(_claims(uid, typ="refresh"), ACCESS_SECRET),
        "refresh as access": tokens["refresh_token"],
        "sub not a uuid": _forge(_claims("admin"), ACCESS_SECRET),
    }
    for case, token in cases.items():
        headers = bearer(token) if token else {}
        response = await client.post("/auth/logout", headers=headers)
        assert response.status_code == 401, case
        assert error_code(response) == "INVALID_TOKEN", case
    basic = await client.post("/auth/logout", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


async def test_access_token_is_not_a_refresh_token(client: httpx.AsyncClient) -> None:
    user = await register(client)
    tokens = await login(client, user["username"])
    response = await client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert response.status_code == 401 and error_code(response) == "INVALID_TOKEN"
    forged = _forge(_claims(user["user_id"], aud=REFRESH_AUDIENCE, typ="refresh"), REFRESH_SECRET)
    response = await client.post("/auth/refresh", json={"refresh_token": forged})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "INVALID_REQUEST"),
        (b"[1, 2]", "application/json", 400, "INVALID_REQUEST"),
        (b'{"username": "a", "password": NaN}', "application/json", 400, "INVALID_REQUEST"),
        (
            b'{"username": "a", "username": "b", "password": "x"}',
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (b'{"username": "a"}', "application/json", 400, "INVALID_REQUEST"),
        (
            b'{"username": "a", "password": "b", "role": "admin"}',
            "application/json",
            400,
            "INVALID_REQUEST",
        ),
        (b'{"username": 1, "password": ["b"]}', "application/json", 400, "INVALID_REQUEST"),
        (
            b"username=a&password=b",
            "application/x-www-form-urlencoded",
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (b'{"username": "\xff\xfe", "password": "b"}', "application/json", 400, "INVALID_REQUEST"),
        (b"[" * 100_00 + b"]" * 100_00, "application/json", 400, "INVALID_REQUEST"),
    ],
)
async def test_malformed_login_bodies(
    client: httpx.AsyncClient, body: bytes, content_type: str, status: int, code: str
) -> None:
    response = await client.post(
        "/auth/login", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == status, response.text
    assert error_code(response) == code


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/login",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413 and error_code(response) == "PAYLOAD_TOO_LARGE"


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here")
    assert missing.status_code == 404 and error_code(missing) == "NOT_FOUND"
    wrong = await client.get("/auth/login")
    assert wrong.status_code == 405 and error_code(wrong) == "METHOD_NOT_ALLOWED"
    assert "POST" in wrong.headers["allow"]


async def test_registration_can_be_switched_off(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.settings = dataclasses.replace(services.settings, allow_registration=False)
    name = new_username()
    response = await client.post(
        "/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 403 and error_code(response) == "INSUFFICIENT_PERMISSIONS"


async def test_login_is_throttled_per_username_across_addresses(
    client: httpx.AsyncClient, services: Services
) -> None:
    from scoreboard.api.app import create_app
    from scoreboard.core.settings import RateRule

    services.sessions._settings = dataclasses.replace(
        services.settings, rate_limit_login=RateRule(3, 60)
    )
    app = create_app(services.settings)
    app.state.services = services
    user = await register(client)
    responses = []
    for attempt in range(5):
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{attempt}", 1000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            responses.append(
                await http.post(
                    "/auth/login",
                    json={"username": user["username"], "password": "wrong password"},
                )
            )
    statuses = [response.status_code for response in responses]
    first, response = responses[0], responses[-1]
    assert statuses == [401, 401, 401, 429, 429]
    assert error_code(response) == "RATE_LIMIT_EXCEEDED"
    assert first.headers["ratelimit-limit"] == "3"
    assert first.headers["ratelimit-remaining"] == "2"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit-limit"] == "3"
    assert response.headers["ratelimit-remaining"] == "0"


async def test_a_crash_in_a_handler_is_a_500_envelope_without_a_trace(
    services: Services,
) -> None:
    from starlette.routing import Route

    from scoreboard.api.app import create_app

    async def boom(request: object) -> None:
        raise RuntimeError("secret internals")

    app = create_app(services.settings)
    app.state.services = services
    app.router.routes.append(Route("/boom", boom))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/boom")
    assert response.status_code == 500
    assert error_code(response) == "INTERNAL_ERROR"
    assert "secret internals" not in response.text
    assert response.json()["error"]["details"]["request_id"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"username": "ab\\ud800c", "email": "a@example.com", "password": "correct horse"}',
        b'{"\\ud800": 1, "username": "abc", "email": "a@example.com", "password": "x"}',
        b'{"username": "abc", "email": "a@example.com", "password": "pass\\udfffword"}',
    ],
)
async def test_a_lone_surrogate_is_a_400_not_a_500(client: httpx.AsyncClient, body: bytes) -> None:
    """Was: an unauthenticated 500 (UnicodeEncodeError hashing the name, and again
    while building the error for an unknown key)."""
    response = await client.post(
        "/v1/auth/register", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and error_code(response) == "INVALID_REQUEST"
    assert "surrogate" in response.json()["error"]["details"]["reason"]


@pytest.mark.parametrize(
    ("body", "internals"),
    [
        (b'{"username": ' + b"1" * 5000 + b', "password": "x"}', "set_int_max_str_digits"),
        (b"[" * 30_000 + b"]" * 30_000, "recursion"),
    ],
)
async def test_error_messages_are_in_our_own_words(
    client: httpx.AsyncClient, body: bytes, internals: str
) -> None:
    response = await client.post(
        "/v1/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and error_code(response) == "INVALID_REQUEST"
    assert internals not in response.text and "sys." not in response.text


async def test_escaped_characters_that_are_whole_still_pass(client: httpx.AsyncClient) -> None:
    name = new_username()
    body = (
        f'{{"username": "{name}", "email": "{name}@example.com",'
        ' "password": "emoji \\ud83d\\ude00 pass"}'
    ).encode()
    response = await client.post(
        "/v1/auth/register", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201, response.text


async def test_a_login_storm_is_shed_quickly_not_queued(settings: Settings) -> None:
    """More logins than the hashing pool can take: those that cannot start hashing
    within SCOREBOARD_HASH_WAIT_MS get 503 with Retry-After at once, and /health stays
    quick meanwhile."""
    storm = dataclasses.replace(settings, bcrypt_rounds=12, hash_workers=1, hash_wait_ms=100)
    services = await Services.open(storm)
    app = create_app(storm)
    app.state.services = services
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            user = await register(http)
            body = {"username": user["username"], "password": PASSWORD}

            async def timed(method: str, url: str, **kw: Any) -> tuple[float, httpx.Response]:
                started = time.perf_counter()
                response = await http.request(method, url, **kw)
                return time.perf_counter() - started, response

            logins = [timed("POST", "/v1/auth/login", json=body) for _ in range(12)]
            health = [timed("GET", "/health") for _ in range(5)]
            results = await asyncio.gather(*logins, *health)
    finally:
        await services.close()
    answered = [response.status_code for _, response in results[:12]]
    assert 200 in answered and 503 in answered
    shed = [(took, r) for took, r in results[:12] if r.status_code == 503]
    assert all(r.headers["Retry-After"] == "1" for _, r in shed)
    assert all(error_code(r) == "SERVICE_UNAVAILABLE" for _, r in shed)
    slowest_ok = max(took for took, r in results[:12] if r.status_code == 200)
    assert max(took for took, _ in shed) < slowest_ok + 1.0  # refused, not queued
    assert max(took for took, _ in results[12:]) < 1.0
