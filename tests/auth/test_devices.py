"""Registered devices: a login names its device; action tokens bind to it (a token
moved to another device is refused); a device that twenty accounts sign in from is
flagged (audited once) and its players' updates judged `device_farm`; admins list a
player's devices and the flagged ones, see a device's accounts, and block a device
(its sessions revoked, its logins refused) or unblock it; a pinned public key holds."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest

from scoreboard.api.services import Services
from scoreboard.auth.devices import handle_of
from scoreboard.core.settings import Settings
from scoreboard.sync import Syncer
from tests.auth_helpers import (
    PASSWORD,
    bearer,
    error_code,
    issue_token,
    login,
    new_username,
    register,
)
from tests.conftest import GENEROUS, unthrottled

FARM_SIZE = 20


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return unthrottled(settings, own_database, rate_limit_login=GENEROUS, audit_flood_sample=100)


def _fingerprint() -> str:
    return hashlib.sha256(uuid.uuid4().bytes).hexdigest()


async def _login(
    http: httpx.AsyncClient, name: str, device: dict[str, str] | None
) -> httpx.Response:
    body: dict[str, Any] = {"username": name, "password": PASSWORD}
    if device is not None:
        body["device"] = device
    return await http.post("/v1/auth/login", json=body)


async def _player_on(http: httpx.AsyncClient, device: dict[str, str]) -> dict[str, Any]:
    user = await register(http)
    response = await _login(http, user["username"], device)
    assert response.status_code == 200, response.text
    return {**user, **response.json()["data"]}


async def _update(
    http: httpx.AsyncClient, access: str, token: str, increase: int = 10
) -> httpx.Response:
    return await http.post(
        "/v1/scores/update",
        json={"score_increase": increase},
        headers={**bearer(access), "X-Action-Token": token},
    )


async def _admin(http: httpx.AsyncClient, services: Services) -> dict[str, str]:
    name = new_username()
    await services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
    return bearer((await login(http, name))["access_token"])


async def _audit(services: Services, event_type: str) -> list[dict[str, Any]]:
    """The audit trail's records of `event_type`, once the syncer persisted them."""
    await Syncer(services.settings, services.redis, services.pool).run(burst=True)
    rows = await services.pool.fetch(
        "SELECT user_id::text, details FROM audit_log WHERE event_type = $1 ORDER BY id",
        event_type,
    )
    return [{"user_id": row["user_id"], **json.loads(row["details"])} for row in rows]


async def test_a_token_moved_to_another_device_is_refused(client: httpx.AsyncClient) -> None:
    user = await register(client)
    name = user["username"]
    on_phone = (await _login(client, name, {"id": "phone-1"})).json()["data"]
    on_laptop = (await _login(client, name, {"id": "laptop-7"})).json()["data"]
    token = await issue_token(client, on_phone["access_token"])

    moved = await _update(client, on_laptop["access_token"], token)
    assert moved.status_code == 400, moved.text
    assert error_code(moved) == "INVALID_ACTION_TOKEN"
    assert moved.json()["error"]["details"]["reason"] == "device_mismatch"
    # the refused token is spent, as any token refused after its owner was checked
    again = await _update(client, on_phone["access_token"], token)
    assert again.status_code == 400 and error_code(again) == "INVALID_ACTION_TOKEN"

    fresh = await issue_token(client, on_phone["access_token"])
    accepted = await _update(client, on_phone["access_token"], fresh)
    assert accepted.status_code == 200, accepted.text
    # a session that named no device holds tokens bound to none
    plain = (await _login(client, name, None)).json()["data"]
    unbound = await issue_token(client, plain["access_token"])
    assert (await _update(client, on_laptop["access_token"], unbound)).status_code == 200
    # and a refreshed session keeps its device
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": on_laptop["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    laptop_token = await issue_token(client, on_laptop["access_token"])
    moved_back = await _update(client, refreshed.json()["data"]["access_token"], laptop_token)
    assert moved_back.status_code == 200, moved_back.text


async def test_a_farm_of_twenty_accounts_on_one_device_is_flagged(
    client: httpx.AsyncClient, services: Services
) -> None:
    device = {"fingerprint": _fingerprint()}
    handle = handle_of("fingerprint", device["fingerprint"])
    farm = [await _player_on(client, device) for _ in range(FARM_SIZE)]
    for player in farm:
        token = await issue_token(client, player["access_token"])
        assert (await _update(client, player["access_token"], token)).status_code == 200

    events = await services.redis.xrange(services.keys.events(), "-", "+")
    judged = {
        fields[b"user_id"].decode(): fields[b"reasons"].decode()
        for _, fields in events
        if fields[b"type"] == b"score_updated"
    }
    assert not any("device_farm" in judged[p["user_id"]] for p in farm[:9])
    assert all(judged[p["user_id"]].startswith("device_farm:") for p in farm[9:])
    flagged = await _audit(services, "device_flagged")
    assert [(row["user_id"], row["device_id"], row["players"]) for row in flagged] == [
        (farm[9]["user_id"], handle, 10)
    ]  # once, as the tenth account signed in

    admin = await _admin(client, services)
    listed = await client.get("/v1/admin/devices/flagged", headers=admin)
    assert listed.status_code == 200, listed.text
    found = [d for d in listed.json()["data"]["devices"] if d["device_id"] == handle]
    assert len(found) == 1
    assert found[0]["players"] == FARM_SIZE and found[0]["flagged_at"] is not None
    assert found[0]["label"] == device["fingerprint"] and found[0]["kind"] == "fingerprint"
    page = await client.get(f"/v1/admin/devices/{handle}", headers=admin)
    accounts = {a["user_id"] for a in page.json()["data"]["accounts"]}
    assert accounts == {p["user_id"] for p in farm}

    # one account on a device of its own is not flagged
    alone = await _player_on(client, {"fingerprint": _fingerprint()})
    mine = await client.get(f"/v1/admin/players/{alone['user_id']}/devices", headers=admin)
    assert [(d["players"], d["flagged_at"]) for d in mine.json()["data"]["devices"]] == [(1, None)]


async def test_a_blocked_device_loses_its_sessions_and_signs_nobody_in(
    client: httpx.AsyncClient, services: Services
) -> None:
    device = {"id": "<script>alert(1)</script>"}  # a name the client chose, kept as given
    handle = handle_of("id", device["id"])
    player = await _player_on(client, device)
    admin = await _admin(client, services)

    listed = await client.get(f"/v1/admin/players/{player['user_id']}/devices", headers=admin)
    assert [(d["device_id"], d["label"]) for d in listed.json()["data"]["devices"]] == [
        (handle, device["id"])
    ]
    blank = await client.post(
        f"/v1/admin/devices/{handle}/block", json={"reason": " "}, headers=admin
    )
    assert blank.status_code == 400  # a reason is required
    blocked = await client.post(
        f"/v1/admin/devices/{handle}/block", json={"reason": "account farm"}, headers=admin
    )
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["data"]["blocked_at"] is not None
    assert blocked.json()["data"]["block_reason"] == "account farm"

    refused = await client.post(
        "/v1/auth/action-token",
        json={"action_type": "game_completion", "session_id": "s1"},
        headers=bearer(player["access_token"]),
    )
    assert refused.status_code == 401  # the session opened from it is revoked
    again = await _login(client, player["username"], device)
    assert again.status_code == 403, again.text
    assert error_code(again) == "INSUFFICIENT_PERMISSIONS"
    assert again.json()["error"]["details"] == {"reason": "device_blocked", "device_id": handle}
    other = await register(client)  # nobody signs in from it
    assert (await _login(client, other["username"], device)).status_code == 403
    (record,) = await _audit(services, "device_blocked")
    assert record["device_id"] == handle and record["sessions_revoked"] == 1
    refusals = await _audit(services, "login_device_refused")
    assert [row["user_id"] for row in refusals] == [player["user_id"], other["user_id"]]

    unblocked = await client.post(f"/v1/admin/devices/{handle}/unblock", headers=admin)
    assert unblocked.status_code == 200 and unblocked.json()["data"]["blocked_at"] is None
    assert (await _login(client, player["username"], device)).status_code == 200
    assert len(await _audit(services, "device_unblocked")) == 1

    for path in (f"/v1/admin/devices/{handle}", f"/v1/admin/players/{player['user_id']}/devices"):
        as_player = await client.get(path, headers=bearer(player["access_token"]))
        assert as_player.status_code in (401, 403)
    unknown = await client.get(f"/v1/admin/devices/{'0' * 32}", headers=admin)
    assert unknown.status_code == 404
    malformed = await client.post(
        "/v1/admin/devices/nope/block", json={"reason": "x"}, headers=admin
    )
    assert malformed.status_code == 400


async def test_a_pinned_public_key_holds(client: httpx.AsyncClient) -> None:
    key = base64.b64encode(uuid.uuid4().bytes * 2).decode()
    other_key = base64.b64encode(uuid.uuid4().bytes * 2).decode()
    device_id = f"console-{uuid.uuid4().hex[:8]}"
    user = await register(client)
    name = user["username"]
    assert (await _login(client, name, {"id": device_id, "public_key": key})).status_code == 200
    assert (await _login(client, name, {"id": device_id, "public_key": key})).status_code == 200
    for device in ({"id": device_id, "public_key": other_key}, {"id": device_id}):
        refused = await _login(client, name, device)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["details"]["reason"] == "device_key_mismatch"


@pytest.mark.parametrize(
    "device",
    [
        {},
        {"id": "a", "fingerprint": "0" * 64},
        {"id": "has space"},
        {"id": "x" * 101},
        {"id": "line\n"},
        {"fingerprint": "A" * 64},
        {"fingerprint": "0" * 63},
        {"id": "a", "public_key": "not a key"},
        {"id": "a", "serial": "1"},
        "phone-1",
    ],
)
async def test_a_malformed_device_is_a_bad_request_and_opens_nothing(
    client: httpx.AsyncClient, services: Services, device: object
) -> None:
    user = await register(client)
    response = await client.post(
        "/v1/auth/login",
        json={"username": user["username"], "password": PASSWORD, "device": device},
    )
    assert response.status_code == 400, response.text
    assert error_code(response) == "INVALID_REQUEST"
    opened = await services.pool.fetchval(
        "SELECT count(*) FROM refresh_families WHERE user_id = $1::uuid", user["user_id"]
    )
    assert opened == 0


async def test_a_server_that_needs_a_device_refuses_a_player_login_without_one(
    client: httpx.AsyncClient, services: Services
) -> None:
    services.sessions._settings = dataclasses.replace(services.settings, require_device=True)
    user = await register(client)
    refused = await _login(client, user["username"], None)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["details"] == {"field": "device", "reason": "device_required"}
    assert (await _login(client, user["username"], {"id": "pad-3"})).status_code == 200
    name = new_username()
    await services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
    assert (await _login(client, name, None)).status_code == 200  # admins need none
