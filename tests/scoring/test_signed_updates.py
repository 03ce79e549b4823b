"""Boards whose score updates the game's server signs (`signing`: HMAC-SHA256 or
Ed25519): a good signature is accepted; a missing, wrong-key, other-token,
other-amount, stale or replayed one is 400 SCORE_VALIDATION_FAILED with its reason,
spends nothing (the same token then works with a good signature) and is audited; the
key is never shown."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from scoreboard.api.services import Services
from scoreboard.core.settings import Settings
from scoreboard.scoring.signatures import signed_text
from scoreboard.sync import Syncer
from tests.auth_helpers import PASSWORD, bearer, error_code, login, new_player, new_username
from tests.conftest import unthrottled

SECRET = "a shared secret of the game server, 48 bytes long"
Signer = Callable[[bytes], bytes]


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    # every refusal recorded (none summed up as a flood)
    return unthrottled(settings, own_database, anticheat_mode="off", audit_flood_sample=100)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hmac_signer(secret: str) -> Signer:
    return lambda text: hmac.new(secret.encode(), text, hashlib.sha256).digest()


def _header(sign: Signer, token: str, user_id: str, increase: int, at: float | None = None) -> str:
    timestamp = int(time.time() if at is None else at)
    return f"t={timestamp},sig={_b64(sign(signed_text(token, user_id, increase, timestamp)))}"


async def _admin(http: httpx.AsyncClient, services: Services) -> dict[str, str]:
    name = new_username()
    await services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
    return bearer((await login(http, name))["access_token"])


async def _board(
    http: httpx.AsyncClient, admin: dict[str, str], name: str, signing: dict[str, str]
) -> dict[str, Any]:
    body = {"name": name, "action_types": {"run": 500}, "signing": signing}
    created = await http.post("/v1/admin/boards", json=body, headers=admin)
    assert created.status_code == 201, created.text
    data: dict[str, Any] = created.json()["data"]
    return data


async def _token(http: httpx.AsyncClient, player: dict[str, Any], board: str) -> str:
    issued = await http.post(
        "/v1/auth/action-token",
        json={"action_type": "run", "session_id": "s1", "board": board},
        headers=bearer(player["access_token"]),
    )
    assert issued.status_code == 200, issued.text
    return str(issued.json()["data"]["action_token"])


async def _update(
    http: httpx.AsyncClient,
    player: dict[str, Any],
    token: str,
    increase: int,
    signature: str | None,
) -> httpx.Response:
    headers = {**bearer(player["access_token"]), "X-Action-Token": token}
    if signature is not None:
        headers["X-Action-Signature"] = signature
    return await http.post("/v1/scores/update", json={"score_increase": increase}, headers=headers)


def _refusal(response: httpx.Response) -> str:
    assert response.status_code == 400, response.text
    assert error_code(response) == "SCORE_VALIDATION_FAILED"
    return str(response.json()["error"]["details"]["reason"])


async def _score(http: httpx.AsyncClient, board: str, user_id: str) -> int:
    found = await http.get(f"/v1/boards/{board}/players/{user_id}")
    return int(found.json()["data"]["periods"]["all"]["score"])


async def test_an_hmac_signed_board_takes_good_signatures_and_refuses_every_bad_one(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    info = await _board(client, admin, "signed", {"algorithm": "hmac-sha256", "key": SECRET})
    assert info["signed_with"] == "hmac-sha256" and SECRET not in str(info)
    player = await new_player(client)
    me = player["user_id"]
    sign = _hmac_signer(SECRET)
    token = await _token(client, player, "signed")
    other_token = await _token(client, player, "signed")
    now = time.time()
    refusals = {
        "missing": await _update(client, player, token, 40, None),
        "malformed": await _update(client, player, token, 40, "sig=abc"),
        "wrong key": await _update(
            client, player, token, 40, _header(_hmac_signer(SECRET + "!"), token, me, 40)
        ),
        "other token": await _update(client, player, token, 40, _header(sign, other_token, me, 40)),
        "other amount": await _update(client, player, token, 400, _header(sign, token, me, 40)),
        "other player": await _update(
            client, player, token, 40, _header(sign, token, "0" * 8 + me[8:], 40)
        ),
        "stale": await _update(client, player, token, 40, _header(sign, token, me, 40, now - 600)),
        "future": await _update(client, player, token, 40, _header(sign, token, me, 40, now + 600)),
    }
    assert {case: _refusal(answer) for case, answer in refusals.items()} == {
        "missing": "signature_missing",
        "malformed": "signature_malformed",
        "wrong key": "signature_invalid",
        "other token": "signature_invalid",
        "other amount": "signature_invalid",
        "other player": "signature_invalid",
        "stale": "signature_stale",
        "future": "signature_stale",
    }
    assert await _score(client, "signed", me) == 0  # nothing was spent or counted

    good = _header(sign, token, me, 40)
    accepted = await _update(client, player, token, 40, good)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["data"]["new_score"] == 40
    # the same signature again is a replay, even with the (spent) token it was made for
    assert _refusal(await _update(client, player, token, 40, good)) == "signature_replayed"
    # a retry of a lost answer is signed afresh: the spent token gives the first answer
    retry = await _update(client, player, token, 40, _header(sign, token, me, 40, now + 1))
    assert retry.status_code == 200 and retry.json()["data"]["new_score"] == 40
    assert await _score(client, "signed", me) == 40

    # every refusal is in the audit trail, with its reason
    await Syncer(services.settings, services.redis, services.pool).run(burst=True)
    rows = await services.pool.fetch(
        "SELECT details->>'reason' AS reason FROM audit_log"
        " WHERE event_type = 'action_signature_refused' AND user_id = $1::uuid",
        me,
    )
    assert sorted(row["reason"] for row in rows) == sorted(
        ["signature_missing", "signature_malformed", "signature_replayed"]
        + ["signature_invalid"] * 4
        + ["signature_stale"] * 2
    )


async def test_an_ed25519_board_checks_with_the_public_key_alone(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = base64.b64encode(public).decode()
    info = await _board(client, admin, "ed-signed", {"algorithm": "ed25519", "key": key})
    assert info["signed_with"] == "ed25519" and key not in str(info)
    player = await new_player(client)
    token = await _token(client, player, "ed-signed")
    impostor = Ed25519PrivateKey.generate()
    wrong = _header(impostor.sign, token, player["user_id"], 25)
    assert _refusal(await _update(client, player, token, 25, wrong)) == "signature_invalid"
    good = _header(private.sign, token, player["user_id"], 25)
    accepted = await _update(client, player, token, 25, good)
    assert accepted.status_code == 200, accepted.text

    listed = (await client.get("/v1/boards")).json()["data"]
    shown = next(board for board in listed if board["name"] == "ed-signed")
    assert shown["signed_with"] == "ed25519" and key not in str(listed)


async def test_the_key_is_checked_changed_and_removed_by_admins(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    for signing in (
        {"algorithm": "ed25519", "key": "not a key, but long enough to pass the length"},
        {"algorithm": "hmac-sha256", "key": "short"},
        {"algorithm": "rsa", "key": SECRET},
    ):
        body = {"name": "bad-key", "action_types": {"run": 5}, "signing": signing}
        refused = await client.post("/v1/admin/boards", json=body, headers=admin)
        assert refused.status_code == 400, (signing, refused.text)
        assert "signing" in refused.json()["error"]["details"]["field"], refused.text
    await _board(client, admin, "rekeyed", {"algorithm": "hmac-sha256", "key": SECRET})
    player = await new_player(client)
    changed = await client.patch(
        "/v1/admin/boards/rekeyed",
        json={"signing": {"algorithm": "hmac-sha256", "key": SECRET.upper()}},
        headers=admin,
    )
    assert changed.status_code == 200 and SECRET.upper() not in changed.text
    token = await _token(client, player, "rekeyed")
    old = _header(_hmac_signer(SECRET), token, player["user_id"], 5)
    assert _refusal(await _update(client, player, token, 5, old)) == "signature_invalid"
    # another change leaves the key as it is
    kept = await client.patch(
        "/v1/admin/boards/rekeyed", json={"periods": ["daily"]}, headers=admin
    )
    assert kept.json()["data"]["signed_with"] == "hmac-sha256"
    removed = await client.patch("/v1/admin/boards/rekeyed", json={"signing": None}, headers=admin)
    assert removed.status_code == 200 and removed.json()["data"]["signed_with"] is None
    unsigned = await _update(client, player, token, 5, None)
    assert unsigned.status_code == 200, unsigned.text
