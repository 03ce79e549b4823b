"""The admin API, the audit trail and the anti-cheat verdicts over HTTP, with the
syncer carrying everything into PostgreSQL (a database of this module's own)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from scoreboard.api.services import Services
from scoreboard.boards.rebuild import ensure_board
from scoreboard.boards.reconcile import reconcile
from scoreboard.core.settings import RateRule, Settings
from scoreboard.sync import Syncer
from tests.auth_helpers import (
    PASSWORD,
    bearer,
    error_code,
    issue_token,
    login,
    new_player,
    new_username,
    submit,
)
from tests.conftest import unthrottled

GENEROUS = RateRule(100_000, 60)

pytestmark = pytest.mark.both_topologies
BOT_DATA = {"level": 1, "time_taken": 0.01, "accuracy": 1.0}


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return unthrottled(settings, own_database, audit_flood_sample=3, audit_flood_window=86_400)


async def _admin(http: httpx.AsyncClient, services: Services) -> dict[str, Any]:
    name = new_username()
    user = await services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
    return {"user_id": user.id, **await login(http, name)}


async def _sync(services: Services) -> None:
    await Syncer(services.settings, services.redis, services.pool).run(burst=True)


async def _top_ids(http: httpx.AsyncClient) -> list[str]:
    response = await http.get("/v1/leaderboard/top10")
    return [entry["user_id"] for entry in response.json()["data"]["leaderboard"]]


async def _play(http: httpx.AsyncClient, player: dict[str, Any], increase: int) -> None:
    """A plausible round: 4.5 s claimed (within the slack of any previous update) at a
    level that allows 20 points a second, so up to 90 points."""
    data = {"time_taken": 4.5, "level": 11, "accuracy": 0.5 + increase / 1000}
    response = await submit(http, player, increase, action_data=data)
    assert response.status_code == 200, response.text


ADMIN_ROUTES = [
    ("POST", "/v1/admin/players/{u}/ban", {"reason": "x"}),
    ("POST", "/v1/admin/players/{u}/unban", {}),
    ("POST", "/v1/admin/players/{u}/adjust", {"delta": 5, "reason": "x"}),
    ("DELETE", "/v1/admin/players/{u}/score", {"reason": "x"}),
    ("GET", "/v1/admin/players/{u}/history", None),
    ("GET", "/v1/admin/flagged", None),
    ("GET", "/v1/admin/audit", None),
    ("GET", "/admin/flagged", None),
]


async def test_only_admins_reach_the_admin_routes(client: httpx.AsyncClient) -> None:
    player = await new_player(client)
    for method, path, body in ADMIN_ROUTES:
        url = path.format(u=player["user_id"])
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        anonymous = await client.request(method, url, **kwargs)
        assert anonymous.status_code == 401, (method, url)
        refused = await client.request(
            method, url, headers=bearer(player["access_token"]), **kwargs
        )
        assert refused.status_code == 403, (method, url)
        assert error_code(refused) == "INSUFFICIENT_PERMISSIONS"


async def test_a_demoted_admins_token_stops_at_once(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    ok = await client.get("/v1/admin/flagged", headers=bearer(admin["access_token"]))
    assert ok.status_code == 200
    await services.pool.execute("UPDATE users SET role = 'player' WHERE id = $1", admin["user_id"])
    refused = await client.get("/v1/admin/flagged", headers=bearer(admin["access_token"]))
    assert refused.status_code == 403


async def test_ban_and_unban(client: httpx.AsyncClient, services: Services) -> None:
    admin = await _admin(client, services)
    leader, other = await new_player(client), await new_player(client)
    await _play(client, leader, 90)
    await _play(client, other, 40)
    token = await issue_token(client, leader["access_token"])
    assert await _top_ids(client) == [leader["user_id"], other["user_id"]]

    headers = bearer(admin["access_token"])
    url = f"/v1/admin/players/{leader['user_id']}"
    response = await client.post(f"{url}/ban", json={"reason": "bot"}, headers=headers)
    assert response.json()["data"] == {"user_id": leader["user_id"], "banned": True}
    assert await _top_ids(client) == [other["user_id"]]
    around = await client.get(f"/v1/leaderboard/around/{leader['user_id']}")
    assert around.json()["data"]["rank"] is None or around.status_code == 404
    # the sessions are revoked: the access token, the refresh token and a new login fail
    spent = await client.post(
        "/v1/scores/update",
        json={"score_increase": 10},
        headers={**bearer(leader["access_token"]), "X-Action-Token": token},
    )
    assert spent.status_code == 401
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": leader["refresh_token"]}
    )
    assert refreshed.status_code == 401
    relog = await client.post(
        "/v1/auth/login", json={"username": leader["username"], "password": PASSWORD}
    )
    assert relog.status_code == 403

    back = await client.post(f"{url}/unban", headers=headers)
    assert back.json()["data"] == {"user_id": leader["user_id"], "banned": False}
    assert await _top_ids(client) == [leader["user_id"], other["user_id"]]
    again = await login(client, leader["username"])
    await _play(client, {**leader, **again}, 5)

    await _sync(services)
    kinds = await services.pool.fetch(
        "SELECT event_type, details->>'admin_id' AS admin FROM audit_log"
        " WHERE user_id = $1 AND event_type LIKE 'admin_%' ORDER BY id",
        leader["user_id"],
    )
    assert [(r["event_type"], r["admin"]) for r in kinds] == [
        ("admin_ban", admin["user_id"]),
        ("admin_unban", admin["user_id"]),
    ]
    row = await services.pool.fetchrow(
        "SELECT banned, current_score FROM users WHERE id = $1", leader["user_id"]
    )
    assert (row["banned"], row["current_score"]) == (False, 95)


async def test_ban_of_an_unknown_player_and_of_oneself(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    headers = bearer(admin["access_token"])
    unknown = await client.post(
        f"/v1/admin/players/{uuid.uuid4()}/ban", json={"reason": "x"}, headers=headers
    )
    assert unknown.status_code == 404
    own = await client.post(
        f"/v1/admin/players/{admin['user_id']}/ban", json={"reason": "x"}, headers=headers
    )
    assert own.status_code == 409
    blank = await client.post(
        f"/v1/admin/players/{admin['user_id']}/ban", json={"reason": " "}, headers=headers
    )
    assert blank.status_code == 400


async def test_adjust_and_remove_reach_postgresql(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    headers = bearer(admin["access_token"])
    a, b = await new_player(client), await new_player(client)
    await _play(client, a, 30)
    await _play(client, b, 20)
    url = f"/v1/admin/players/{b['user_id']}"
    up = await client.post(f"{url}/adjust", json={"delta": 25, "reason": "refund"}, headers=headers)
    assert up.json()["data"] == {"user_id": b["user_id"], "new_score": 45, "rank": 1}
    for bad in (0, 1.5, "5", True, -1000):
        refused = await client.post(
            f"{url}/adjust", json={"delta": bad, "reason": "x"}, headers=headers
        )
        assert refused.status_code == 400, bad
    gone = await client.request(
        "DELETE",
        f"/v1/admin/players/{a['user_id']}/score",
        json={"reason": "cheat"},
        headers=headers,
    )
    assert gone.json()["data"] == {"user_id": a["user_id"], "removed": True}
    assert await _top_ids(client) == [b["user_id"]]
    await _sync(services)
    rows = await services.pool.fetch(
        "SELECT id::text, current_score FROM users WHERE id = ANY($1::uuid[])",
        [a["user_id"], b["user_id"]],
    )
    assert {r["id"]: r["current_score"] for r in rows} == {a["user_id"]: 0, b["user_id"]: 45}
    history = await client.get(f"/v1/admin/players/{a['user_id']}/history", headers=headers)
    types = [item["event_type"] for item in history.json()["data"]["items"]]
    assert types == ["admin_remove", "score_update"]
    removal = history.json()["data"]["items"][0]
    assert removal["score_change"] == -30 and removal["details"]["admin_id"] == admin["user_id"]
    assert removal["details"]["reason"] == "cheat"


async def test_the_bot_is_flagged_rejected_listed_and_banned(
    client: httpx.AsyncClient, services: Services
) -> None:
    """The report's bot: ten maximum submissions in a row claiming 0.01 s each."""
    admin = await _admin(client, services)
    bot = await new_player(client)
    statuses = []
    for _ in range(10):
        response = await submit(client, bot, 100, action_data=BOT_DATA)
        statuses.append(response.status_code)
        if response.status_code == 400:
            error = response.json()["error"]
            assert error["code"] == "SCORE_VALIDATION_FAILED"
            assert error["details"]["reason"] in {r["check"] for r in error["details"]["reasons"]}
    assert statuses == [200] * 2 + [400] * 8
    await _sync(services)
    headers = bearer(admin["access_token"])
    page = (await client.get("/v1/admin/flagged?limit=3", headers=headers)).json()["data"]
    assert len(page["items"]) == 3 and page["next_cursor"]
    rest = await client.get(f"/v1/admin/flagged?cursor={page['next_cursor']}", headers=headers)
    items = page["items"] + rest.json()["data"]["items"]
    assert len(items) == 10 and {item["user_id"] for item in items} == {bot["user_id"]}
    assert [item["validation_result"] for item in items] == ["rejected"] * 8 + ["flagged"] * 2
    first = items[-1]
    assert first["username"] == bot["username"] and first["score_change"] == 100
    assert first["reasons"][0]["check"] == "points_per_second" and first["risk_score"] >= 0.5
    ban = await client.post(
        f"/v1/admin/players/{bot['user_id']}/ban", json={"reason": "bot"}, headers=headers
    )
    assert ban.status_code == 200
    assert bot["user_id"] not in await _top_ids(client)


async def test_security_events_land_in_the_audit_log(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    player = await new_player(client)
    failed = await client.post(
        "/v1/auth/login", json={"username": player["username"], "password": "wrong password"}
    )
    assert failed.status_code == 401
    unknown = await client.post(
        "/v1/scores/update",
        json={"score_increase": 5},
        headers={**bearer(player["access_token"]), "X-Action-Token": "not-a-token"},
    )
    assert unknown.status_code == 400
    second = await login(client, player["username"])
    rotated = await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert rotated.status_code == 200
    reused = await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert reused.status_code == 401
    out = await client.post("/v1/auth/logout", headers=bearer(player["access_token"]))
    assert out.status_code == 200
    await _sync(services)
    headers = bearer(admin["access_token"])
    response = await client.get("/v1/admin/audit?limit=50", headers=headers)
    items = response.json()["data"]["items"]
    seen = {item["event_type"] for item in items}
    assert {"login_failed", "action_token_refused", "refresh_token_reuse", "logout"} <= seen
    login_failed = next(item for item in items if item["event_type"] == "login_failed")
    assert login_failed["ip_address"] == "203.0.113.7"
    assert login_failed["details"]["username"] == player["username"]
    mine = await client.get(
        f"/v1/admin/audit?event_type=logout&user_id={player['user_id']}", headers=headers
    )
    assert [item["event_type"] for item in mine.json()["data"]["items"]] == ["logout"]
    bad = await client.get("/v1/admin/audit?event_type=DROP%20TABLE", headers=headers)
    assert bad.status_code == 400


async def test_the_audit_trail_is_filtered_by_time(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was: the audit listing had no time filter (the console offers one)."""
    admin = await _admin(client, services)
    player = await new_player(client)
    out = await client.post("/v1/auth/logout", headers=bearer(player["access_token"]))
    assert out.status_code == 200
    await _sync(services)
    headers = bearer(admin["access_token"])
    mine = f"/v1/admin/audit?event_type=logout&user_id={player['user_id']}"

    async def logouts(query: str) -> int:
        response = await client.get(mine + query, headers=headers)
        assert response.status_code == 200, response.text
        return len(response.json()["data"]["items"])

    assert await logouts("&since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00%2B02:00") == 1
    assert await logouts("&since=2999-01-01T00:00:00Z") == 0
    assert await logouts("&until=2000-01-01T00:00:00.5-05:00") == 0
    assert await logouts("&since=0000-01-01T00:00:00Z&until=2998-12-31T23:59:60Z") == 1
    for bad in ("yesterday", "2026-12-04T10:30:00", "2026-13-01T00:00:00Z"):
        refused = await client.get(f"{mine}&since={bad}", headers=headers)
        assert refused.status_code == 400
        assert refused.json()["error"]["details"]["field"] == "since"


async def test_a_flood_of_refused_logins_is_counted_not_stored(
    client: httpx.AsyncClient, services: Services
) -> None:
    player = await new_player(client)
    body = {"username": player["username"], "password": "wrong password"}
    refused = await asyncio.gather(*(client.post("/v1/auth/login", json=body) for _ in range(40)))
    assert {r.status_code for r in refused} == {401}
    assert await services.audit.flush_floods(services.redis, now_s=time.time() + 86_400) == 1
    await _sync(services)
    rows = await services.pool.fetch(
        "SELECT details FROM audit_log WHERE event_type = 'login_failed' ORDER BY id"
    )
    assert len(rows) == 4  # three one by one, then one counted record
    counted = json.loads(rows[-1]["details"])
    assert (counted["count"], counted["attempts"]) == (37, 40)


async def test_a_players_failed_logins_are_in_their_audit_trail(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was: after 150 wrong passwords on one account, `/admin/audit?user_id=` had 0
    items (records carried user_id null and the name in details; roll-ups neither),
    and a name that is no account was stored as typed (it may be a password)."""
    admin = await _admin(client, services)
    player = await new_player(client)
    body = {"username": player["username"], "password": "wrong password"}
    refused = await asyncio.gather(*(client.post("/v1/auth/login", json=body) for _ in range(150)))
    assert {r.status_code for r in refused} == {401}
    typo = {"username": "correct horse battery staple", "password": "x"}
    stranger = [await client.post("/v1/auth/login", json=typo) for _ in range(5)]
    # the client is told the same for an unknown name as for a wrong password
    assert {r.json()["error"]["message"] for r in stranger + refused} == {
        refused[0].json()["error"]["message"]
    }
    assert await services.audit.flush_floods(services.redis, now_s=time.time() + 86_400) == 2
    await _sync(services)
    headers = bearer(admin["access_token"])
    mine = await client.get(
        f"/v1/admin/audit?event_type=login_failed&user_id={player['user_id']}&limit=200",
        headers=headers,
    )
    items = mine.json()["data"]["items"]
    assert len(items) == 4, items  # three one by one, then the roll-up of the rest
    counted = [item for item in items if item["details"].get("aggregated")]
    assert len(counted) == 1 and counted[0]["details"]["count"] == 147
    assert all(item["user_id"] == player["user_id"] for item in items)
    assert items[-1]["details"]["username"] == player["username"]

    everything = await client.get(
        "/v1/admin/audit?event_type=login_failed&limit=200", headers=headers
    )
    others = [i for i in everything.json()["data"]["items"] if i["user_id"] != player["user_id"]]
    assert len(others) == 4 and all(item["user_id"] is None for item in others)
    assert "correct horse" not in json.dumps(others)
    digests = {item["details"]["username_digest"] for item in others}
    assert len(digests) == 1 and len(digests.pop()) == 16
    assert others[-1]["details"]["username_length"] == len(typo["username"])


@pytest.mark.cluster_in_ci
async def test_a_rebuilt_board_keeps_banned_players_off(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    a, b = await new_player(client), await new_player(client)
    await _play(client, a, 50)
    await _play(client, b, 50)
    headers = bearer(admin["access_token"])
    await client.post(
        f"/v1/admin/players/{a['user_id']}/ban", json={"reason": "x"}, headers=headers
    )
    await _sync(services)
    board = services.keys.board()
    await services.redis.delete(board.state, board.leaderboard, board.players, board.banned)
    assert await ensure_board(services.redis, services.pool, services.scripts, board) == "rebuilt"
    services.leaderboard.invalidate()
    assert await _top_ids(client) == [b["user_id"]]
    await client.post(f"/v1/admin/players/{a['user_id']}/unban", headers=headers)
    assert await _top_ids(client) == [a["user_id"], b["user_id"]]  # a reached 50 first


async def test_a_ban_set_by_hand_in_postgresql_is_reconciled(
    client: httpx.AsyncClient, services: Services
) -> None:
    player = await new_player(client)
    await _play(client, player, 30)
    await _sync(services)
    await services.pool.execute("UPDATE users SET banned = true WHERE id = $1", player["user_id"])
    report = await reconcile(services.redis, services.pool, services.scripts, services.keys.board())
    assert report.differences["ban_missing"] == 1 and report.repaired
    token_response = await client.post(
        "/v1/auth/action-token",
        json={"action_type": "game_completion", "session_id": "s"},
        headers=bearer(player["access_token"]),
    )
    assert token_response.status_code == 403


async def _reasons_of(
    client: httpx.AsyncClient, services: Services, admin: dict[str, Any], user_id: str
) -> set[str]:
    await _sync(services)
    page = await client.get("/v1/admin/flagged?limit=200", headers=bearer(admin["access_token"]))
    return {
        reason["check"]
        for item in page.json()["data"]["items"]
        if item["user_id"] == user_id
        for reason in item["reasons"]
    }


def _human(n: int) -> dict[str, Any]:
    """Telemetry of a plausible short round, different every time."""
    return {"time_taken": 4.5, "level": 11, "accuracy": round(0.3 + (n % 60) / 100, 4)}


async def test_a_bot_per_check_is_caught(client: httpx.AsyncClient, services: Services) -> None:
    """Each bot cheats one way, through the API: each is flagged or rejected for it."""
    admin = await _admin(client, services)
    bots = {
        name: await new_player(client) for name in ("window", "duration", "rate", "outlier", "run")
    }

    # pace: plausible rounds, but more than 250 points in a minute is flagged
    for n in range(12):
        await submit(client, bots["window"], 90, action_data=_human(n))
    # impossible duration: a 10-minute round claimed a moment after the previous one
    await submit(client, bots["duration"], 10, action_data=_human(0))
    await submit(client, bots["duration"], 10, action_data={**_human(1), "time_taken": 600})
    # points per second: 90 points for one second of play
    await submit(client, bots["rate"], 90, action_data={**_human(0), "time_taken": 1.0})
    # outlier: twenty rounds of about 5, then 60 at once
    # (no play claimed: a player's claims must fit the time that passed)
    unclaimed = {"level": 11}
    for n in range(20):
        await submit(
            client, bots["outlier"], 4 + n % 3, action_data={**unclaimed, "accuracy": n / 100}
        )
    await submit(client, bots["outlier"], 60, action_data=unclaimed)
    # automation: the same small round, again and again, evenly spaced
    for _ in range(6):
        await submit(client, bots["run"], 3, action_data={"time_taken": 4.5, "level": 2})
        await asyncio.sleep(0.05)

    expected = {
        "window": "points_per_minute",
        "duration": "impossible_duration",
        "rate": "points_per_second",
        "outlier": "outlier",
        "run": "automation",
    }
    for name, check in expected.items():
        assert check in await _reasons_of(client, services, admin, bots[name]["user_id"]), name
