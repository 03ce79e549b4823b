"""One-time passwords (TOTP, RFC 6238): enrolment, confirmation, logins that need a
code (each accepted once) or a recovery code (each once), attempts rate-limited,
secrets encrypted at rest, an operator's reset, the admin routes closed to an admin
without them while `SCOREBOARD_ADMIN_MFA=required`, and every step audited."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import httpx
import pyotp
import pytest

from scoreboard.api.services import Services
from scoreboard.auth.mfa import OneTimePasswords
from scoreboard.auth.operator import Operator, reset_mfa
from scoreboard.core.settings import RateRule, Settings
from scoreboard.sync import Syncer
from tests.auth_helpers import PASSWORD, bearer, error_code, new_player, new_username
from tests.conftest import unthrottled

STEP = 30


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return unthrottled(
        settings, own_database, audit_flood_sample=100, rate_limit_mfa=RateRule(100, 60)
    )


async def _login(http: httpx.AsyncClient, name: str, otp: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"username": name, "password": PASSWORD}
    if otp is not None:
        body["otp"] = otp
    return await http.post("/v1/auth/login", json=body)


def _refusal(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    assert error_code(response) == "MFA_REQUIRED"
    return str(response.json()["error"]["details"]["reason"])


async def _enrolled(http: httpx.AsyncClient, player: dict[str, Any]) -> dict[str, Any]:
    enrolled = await http.post("/v1/auth/mfa/enroll", headers=bearer(player["access_token"]))
    assert enrolled.status_code == 200, enrolled.text
    data: dict[str, Any] = enrolled.json()["data"]
    return data


def test_codes_of_the_library_at_fixed_instants_match_their_step_and_its_neighbours() -> None:
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    at = 1_796_482_800.0  # a step's first second
    code = totp.at(at)
    step = int(at // STEP)
    match = OneTimePasswords._matching_step
    assert match(secret, code, at) == step
    assert match(secret, code, at + STEP) == step  # the step after: a slow typist
    assert match(secret, code, at - STEP) == step  # the step before: a clock ahead
    assert match(secret, code, at + 2 * STEP) is None
    assert match(secret, code, at - 2 * STEP) is None
    assert match(secret, "12345", at) is None and match(secret, "abcdef", at) is None
    # RFC 6238's own test vector (SHA-1, the ASCII secret 12345678901234567890)
    rfc = pyotp.TOTP("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", digits=8)
    assert rfc.at(59) == "94287082"


async def test_an_enrolment_is_confirmed_then_every_login_needs_a_code_once(
    client: httpx.AsyncClient, services: Services
) -> None:
    player = await new_player(client)
    name = player["username"]
    data = await _enrolled(client, player)
    assert data["otpauth_uri"].startswith(f"otpauth://totp/scoreboard:{name}?secret=")
    assert len(data["recovery_codes"]) == 10 and len(set(data["recovery_codes"])) == 10
    totp = pyotp.TOTP(data["secret"])
    # not on until confirmed
    assert (await _login(client, name)).status_code == 200
    headers = bearer(player["access_token"])
    wrong = await client.post("/v1/auth/mfa/confirm", json={"code": "000000"}, headers=headers)
    assert wrong.status_code == 400
    confirmed = await client.post(
        "/v1/auth/mfa/confirm", json={"code": totp.now()}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    # secrets are kept encrypted
    stored = await services.pool.fetchval(
        "SELECT secret FROM user_mfa WHERE user_id = $1::uuid", player["user_id"]
    )
    assert data["secret"].encode() not in bytes(stored)

    assert _refusal(await _login(client, name)) == "missing"
    assert _refusal(await _login(client, name, "123456")) == "invalid"
    # the confirming code's step is spent: the next step's code (within the drift) works
    following = totp.at(time.time() + STEP)
    ok = await _login(client, name, following)
    assert ok.status_code == 200, ok.text
    assert _refusal(await _login(client, name, following)) == "reused"
    # recovery codes, each once
    recovery = data["recovery_codes"][3]
    assert (await _login(client, name, recovery)).status_code == 200
    assert _refusal(await _login(client, name, recovery)) == "invalid"
    again = await client.post("/v1/auth/mfa/enroll", headers=headers)
    assert again.status_code == 409

    # an operator's reset: the account logs in with its password alone and enrols afresh
    user = await services.accounts.by_username(name)
    assert user is not None
    assert await reset_mfa(services.pool, user, Operator("ops@host", "scoreboard users reset-mfa"))
    assert (await _login(client, name)).status_code == 200

    await Syncer(services.settings, services.redis, services.pool).run(burst=True)
    rows = await services.pool.fetch(
        "SELECT event_type, details->>'reason' AS reason FROM audit_log"
        " WHERE user_id = $1::uuid AND event_type LIKE 'mfa%' ORDER BY id",
        player["user_id"],
    )
    seen = [(row["event_type"], row["reason"]) for row in rows]
    assert ("mfa_enrolled", None) in seen and ("mfa_confirmed", None) in seen
    assert {"missing", "invalid", "reused"} <= {r for t, r in seen if t == "mfa_refused"}
    assert ("mfa_recovery_code_used", None) in seen and ("mfa_reset", None) in seen


async def test_codes_tried_are_rate_limited_per_account(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.otp._settings = dataclasses.replace(services.settings, rate_limit_mfa=RateRule(3, 60))
    player = await new_player(client)
    data = await _enrolled(client, player)
    headers = bearer(player["access_token"])
    code = pyotp.TOTP(data["secret"]).now()
    confirmed = await client.post("/v1/auth/mfa/confirm", json={"code": code}, headers=headers)
    assert confirmed.status_code == 200
    for _ in range(2):
        assert _refusal(await _login(client, player["username"], "000000")) == "invalid"
    throttled = await _login(client, player["username"], "000000")
    assert throttled.status_code == 429, throttled.text


async def test_with_mfa_required_an_admin_enrols_before_the_admin_routes(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.admin._settings = dataclasses.replace(services.settings, admin_mfa="required")
    name = new_username()
    await services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
    session = (await _login(client, name)).json()["data"]
    headers = bearer(session["access_token"])
    closed = await client.get("/v1/admin/audit", headers=headers)
    assert closed.status_code == 403 and error_code(closed) == "MFA_REQUIRED"
    enrolled = (await client.post("/v1/auth/mfa/enroll", headers=headers)).json()["data"]
    code = pyotp.TOTP(enrolled["secret"]).now()
    assert (
        await client.post("/v1/auth/mfa/confirm", json={"code": code}, headers=headers)
    ).status_code == 200
    opened = await client.get("/v1/admin/audit", headers=headers)
    assert opened.status_code == 200, opened.text
    assert _refusal(await _login(client, name)) == "missing"
