"""Several boards over HTTP: an admin creates one with periods, players play on it and on
`global`, each ranking answers on its own, a closed day stays readable from PostgreSQL
after midnight (a test clock), and a season reset archives and empties the board."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from scoreboard.api.services import Services
from scoreboard.boards.reconcile import reconcile
from scoreboard.core.periods import iso_utc, period_at
from scoreboard.core.settings import RateRule, Settings
from scoreboard.core.values import entry_member
from scoreboard.sync import SyncFleet
from tests.auth_helpers import PASSWORD, bearer, error_code, login, new_player, new_username
from tests.conftest import asgi_client, unthrottled

GENEROUS = RateRule(100_000, 60)

pytestmark = pytest.mark.both_topologies
SPEEDRUN = {"name": "speedrun", "action_types": {"run": 500}, "periods": ["daily", "weekly"]}


def _coming_monday_late() -> datetime:
    """23:00 UTC of a Monday at least two days ahead: an hour before a day ends, with
    the ISO week going on past midnight (the test clock only runs ahead)."""
    day = datetime.now(UTC).date() + timedelta(days=2)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 23, tzinfo=UTC)


TEST_NOW = _coming_monday_late()
AFTER_MIDNIGHT = TEST_NOW + timedelta(minutes=90)
DAY = period_at("daily", int(TEST_NOW.timestamp() * 1000))
WEEK = period_at("weekly", int(TEST_NOW.timestamp() * 1000))
NEXT_DAY = period_at("daily", int(AFTER_MIDNIGHT.timestamp() * 1000))


def _offset_ms(target: datetime) -> int:
    return max(0, int((target.timestamp() - time.time()) * 1000))


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return unthrottled(settings, own_database, anticheat_mode="off")


@pytest.fixture
def clock_offset_ms() -> int:
    return _offset_ms(TEST_NOW)


async def _admin(http: httpx.AsyncClient, services: Services) -> dict[str, Any]:
    name = new_username()
    user = await services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
    return {"user_id": user.id, **await login(http, name)}


async def _play(
    http: httpx.AsyncClient, player: dict[str, Any], increase: int, board: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {
        "action_type": "run" if board else "game_completion",
        "session_id": "s1",
    }
    if board:
        body["board"] = board
    issued = await http.post(
        "/v1/auth/action-token", json=body, headers=bearer(player["access_token"])
    )
    assert issued.status_code == 200, issued.text
    return await http.post(
        "/v1/scores/update",
        json={"score_increase": increase},
        headers={
            **bearer(player["access_token"]),
            "X-Action-Token": issued.json()["data"]["action_token"],
        },
    )


async def _ids(http: httpx.AsyncClient, path: str) -> list[tuple[str, int]]:
    response = await http.get(path)
    assert response.status_code == 200, response.text
    return [(e["user_id"], e["score"]) for e in response.json()["data"]["leaderboard"]]


async def _sync(services: Services) -> None:
    fleet = SyncFleet(services.settings, services.redis, services.pool, clock=services.boards.clock)
    await fleet.run(burst=True)


async def _create(
    http: httpx.AsyncClient, admin: dict[str, Any], body: dict[str, Any]
) -> httpx.Response:
    return await http.post("/v1/admin/boards", json=body, headers=bearer(admin["access_token"]))


async def test_a_new_board_with_periods_ranks_on_its_own(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    created = await _create(client, admin, SPEEDRUN)
    assert created.status_code == 201, created.text
    info = created.json()["data"]
    assert info["name"] == "speedrun" and info["season"] == 1
    kinds = {p["kind"]: p for p in info["periods"]}
    assert kinds["daily"]["id"] == DAY.id
    assert kinds["daily"]["next_reset_at"] == iso_utc(DAY.ends_ms)
    assert kinds["daily"]["next_reset_at"] == f"{NEXT_DAY.id[6:]}T00:00:00.000Z"
    assert kinds["weekly"]["id"] == WEEK.id
    assert kinds["weekly"]["next_reset_at"] == iso_utc(WEEK.ends_ms)

    alice, bob = await new_player(client), await new_player(client)
    answer = await _play(client, alice, 120, "speedrun")
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["board"] == "speedrun" and (data["new_score"], data["rank"]) == (120, 1)
    assert data["periods"]["daily"] == {
        "id": DAY.id,
        "score": 120,
        "rank": 1,
        "next_reset_at": iso_utc(DAY.ends_ms),
    }
    assert (await _play(client, bob, 90, "speedrun")).status_code == 200
    assert (await _play(client, bob, 40)).status_code == 200  # on global

    assert await _ids(client, "/v1/boards/speedrun/top10") == [
        (alice["user_id"], 120),
        (bob["user_id"], 90),
    ]
    assert await _ids(client, "/v1/boards/speedrun/top10?period=daily") == [
        (alice["user_id"], 120),
        (bob["user_id"], 90),
    ]
    assert await _ids(client, "/v1/leaderboard/top10") == [(bob["user_id"], 40)]
    assert await _ids(client, "/v1/boards/global/top10") == [(bob["user_id"], 40)]
    top = (await client.get("/v1/boards/speedrun/top10?period=weekly")).json()["data"]
    assert top["period_id"] == WEEK.id
    assert top["next_reset_at"] == iso_utc(WEEK.ends_ms)

    standing = await client.get(f"/v1/boards/speedrun/players/{bob['user_id']}")
    periods = standing.json()["data"]["periods"]
    assert (periods["all"]["score"], periods["all"]["rank"]) == (90, 2)
    assert (periods["daily"]["score"], periods["daily"]["rank"]) == (90, 2)
    around = await client.get(f"/v1/boards/speedrun/around/{bob['user_id']}?period=daily&radius=1")
    assert around.json()["data"]["rank"] == 2

    listed = (await client.get("/v1/boards")).json()["data"]
    assert {b["name"] for b in listed} >= {"global", "speedrun"}

    # the token is bound to its board: a global token spends on global only
    await _sync(services)
    rows = await services.pool.fetch(
        "SELECT board, period_id, user_id::text, score FROM period_scores ORDER BY score DESC"
    )
    assert sorted((r["period_id"], r["score"]) for r in rows if r["board"] == "speedrun") == sorted(
        [(DAY.id, 120), (WEEK.id, 120), (DAY.id, 90), (WEEK.id, 90)]
    )
    users = await services.pool.fetchval(
        "SELECT current_score FROM users WHERE id = $1::uuid", bob["user_id"]
    )
    assert users == 40  # users.current_score stays the global board's


async def test_bad_boards_and_periods_are_refused(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    player = await new_player(client)
    missing = await client.get("/v1/boards/nope/top10")
    assert missing.status_code == 404 and error_code(missing) == "BOARD_NOT_FOUND"
    issued = await client.post(
        "/v1/auth/action-token",
        json={"action_type": "run", "session_id": "s1", "board": "nope"},
        headers=bearer(player["access_token"]),
    )
    assert issued.status_code == 400 and issued.json()["error"]["details"]["field"] == "board"
    no_period = await client.get("/v1/boards/global/top10?period=daily")
    assert no_period.status_code == 404 and error_code(no_period) == "NOT_FOUND"
    for body in (
        {**SPEEDRUN, "name": "Bad Name"},
        {**SPEEDRUN, "name": "speedrun\n"},  # was: created (a trailing newline passed)
        {**SPEEDRUN, "periods": ["hourly"]},
        {**SPEEDRUN, "periods": ["daily", "daily"]},
        {**SPEEDRUN, "action_types": {}},
        {**SPEEDRUN, "action_types": {"run": 0}},
    ):
        refused = await _create(client, admin, body)
        assert refused.status_code == 400, body
    assert (await _create(client, admin, SPEEDRUN)).status_code == 201
    taken = await _create(client, admin, SPEEDRUN)
    assert taken.status_code == 409
    other_type = await client.post(
        "/v1/auth/action-token",
        json={"action_type": "game_completion", "session_id": "s1", "board": "speedrun"},
        headers=bearer(player["access_token"]),
    )
    assert other_type.status_code == 400
    bad_history = await client.get("/v1/boards/speedrun/history/daily:2026-02-30")
    assert bad_history.status_code == 400
    not_ended = await client.get("/v1/boards/speedrun/history/season:1")
    assert not_ended.status_code == 404
    as_player = await client.post(
        "/v1/admin/boards", json=SPEEDRUN, headers=bearer(player["access_token"])
    )
    assert as_player.status_code == 403


async def test_changes_reach_every_process(client: httpx.AsyncClient, services: Services) -> None:
    """A board created through another process (here: straight in PostgreSQL, as the
    other process writes it) is usable at once, and a change is followed."""
    other = await Services.open(services.settings, clock_offset_ms=services.boards.clock.offset_ms)
    try:
        admin = await _admin(client, services)
        assert (await _create(client, admin, SPEEDRUN)).status_code == 201
        config = await other.catalog.find("speedrun")
        assert config.periods == ("daily", "weekly")
        patched = await client.patch(
            "/v1/admin/boards/speedrun",
            json={"periods": ["monthly"], "action_types": {"run": 50, "jump": 5}},
            headers=bearer(admin["access_token"]),
        )
        assert patched.status_code == 200, patched.text
        assert [p["kind"] for p in patched.json()["data"]["periods"]] == ["monthly"]
        for _ in range(50):
            if other.catalog.get("speedrun").periods == ("monthly",):  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.1)
        assert other.catalog.get("speedrun").action_types == {"run": 50, "jump": 5}  # type: ignore[union-attr]
    finally:
        await other.close()


async def test_yesterday_stays_readable_after_midnight(
    settings: Settings, clock_offset_ms: int
) -> None:
    """One process before midnight, one after (the test clock moved on), one database."""
    before = await Services.open(settings, clock_offset_ms=clock_offset_ms)
    app_http = asgi_client(before)
    try:
        async with app_http as http:
            admin = await _admin(http, before)
            assert (await _create(http, admin, SPEEDRUN)).status_code == 201
            alice, bob = await new_player(http), await new_player(http)
            assert (await _play(http, alice, 70, "speedrun")).status_code == 200
            assert (await _play(http, bob, 30, "speedrun")).status_code == 200
            await _sync(before)
    finally:
        await before.close()
    after = await Services.open(settings, clock_offset_ms=_offset_ms(AFTER_MIDNIGHT))
    try:
        async with asgi_client(after) as http:
            today = await http.get("/v1/boards/speedrun/top10?period=daily")
            assert today.json()["data"]["period_id"] == NEXT_DAY.id
            assert today.json()["data"]["leaderboard"] == []
            assert (await _play(http, bob, 5, "speedrun")).status_code == 200
            assert await _ids(http, "/v1/boards/speedrun/top10?period=daily") == [
                (bob["user_id"], 5)
            ]
            assert await _ids(http, f"/v1/boards/speedrun/history/{DAY.id}") == [
                (alice["user_id"], 70),
                (bob["user_id"], 30),
            ]
            # the week goes on across midnight
            assert await _ids(http, "/v1/boards/speedrun/top10?period=weekly") == [
                (alice["user_id"], 70),
                (bob["user_id"], 35),
            ]
            second = await http.get(f"/v1/boards/speedrun/history/{DAY.id}?limit=1&offset=1")
            page = second.json()["data"]
            assert (page["total_players"], page["leaderboard"][0]["rank"]) == (2, 2)
    finally:
        await after.close()


async def test_a_season_reset_archives_and_empties_the_board(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    assert (await _create(client, admin, SPEEDRUN)).status_code == 201
    alice, bob = await new_player(client), await new_player(client)
    assert (await _play(client, alice, 100, "speedrun")).status_code == 200
    assert (await _play(client, bob, 100, "speedrun")).status_code == 200  # tie: alice first
    assert (await _play(client, bob, 10)).status_code == 200  # global: not reset
    reset = await client.post(
        "/v1/admin/boards/speedrun/reset",
        json={"reason": "season 1 is over"},
        headers=bearer(admin["access_token"]),
    )
    assert reset.status_code == 200, reset.text
    assert reset.json()["data"] == {
        "board": "speedrun",
        "ended_season": 1,
        "season": 2,
        "players": 2,
        "archive": "season:1",
    }
    assert await _ids(client, "/v1/boards/speedrun/top10") == []
    assert await _ids(client, "/v1/boards/speedrun/top10?period=daily") != []  # periods go on
    assert await _ids(client, "/v1/leaderboard/top10") == [(bob["user_id"], 10)]
    assert (await _play(client, bob, 7, "speedrun")).status_code == 200
    await _sync(services)
    assert await _ids(client, "/v1/boards/speedrun/history/season:1") == [
        (alice["user_id"], 100),
        (bob["user_id"], 100),
    ]
    assert await _ids(client, "/v1/boards/speedrun/top10") == [(bob["user_id"], 7)]
    listed = {b["name"]: b for b in (await client.get("/v1/boards")).json()["data"]}
    assert listed["speedrun"]["season"] == 2
    scores = await services.pool.fetch(
        "SELECT user_id::text, score FROM board_scores WHERE board = 'speedrun'"
    )
    assert [(r["user_id"], r["score"]) for r in scores] == [(bob["user_id"], 7)]
    audit = await services.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE event_type = 'season_reset'"
    )
    assert audit == 1
    await _sync(services)  # a second pass archives nothing twice
    assert await services.pool.fetchval("SELECT count(*) FROM season_standings") == 2


async def test_a_ban_holds_on_every_board(client: httpx.AsyncClient, services: Services) -> None:
    admin = await _admin(client, services)
    assert (await _create(client, admin, SPEEDRUN)).status_code == 201
    cheat = await new_player(client)
    assert (await _play(client, cheat, 50, "speedrun")).status_code == 200
    banned = await client.post(
        f"/v1/admin/players/{cheat['user_id']}/ban",
        json={"reason": "bot"},
        headers=bearer(admin["access_token"]),
    )
    assert banned.status_code == 200
    assert await _ids(client, "/v1/boards/speedrun/top10") == []
    assert await _ids(client, "/v1/boards/speedrun/top10?period=daily") == []
    assert await _ids(client, "/v1/boards/speedrun/top10?period=weekly") == []
    unbanned = await client.post(
        f"/v1/admin/players/{cheat['user_id']}/unban", headers=bearer(admin["access_token"])
    )
    assert unbanned.status_code == 200
    for period in ("all", "daily", "weekly"):
        assert await _ids(client, f"/v1/boards/speedrun/top10?period={period}") == [
            (cheat["user_id"], 50)
        ]


async def test_a_lost_board_comes_back_with_its_periods(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Redis loses every key of a board with periods: the rebuild restores the all-time
    ranking and each current period's, from PostgreSQL plus the updates it does not
    hold yet, ties and expiry included."""
    admin = await _admin(client, services)
    assert (await _create(client, admin, SPEEDRUN)).status_code == 201
    alice, bob, carol = [await new_player(client) for _ in range(3)]
    assert (await _play(client, alice, 60, "speedrun")).status_code == 200
    assert (await _play(client, bob, 60, "speedrun")).status_code == 200
    await _sync(services)  # these two are in PostgreSQL...
    assert (await _play(client, carol, 60, "speedrun")).status_code == 200
    assert (await _play(client, alice, 5, "speedrun")).status_code == 200  # ...these not yet
    before = {
        period: await _ids(client, f"/v1/boards/speedrun/top10?period={period}")
        for period in ("all", "daily", "weekly")
    }
    assert before["daily"] == [
        (alice["user_id"], 65),
        (bob["user_id"], 60),
        (carol["user_id"], 60),
    ]
    board = services.keys.board("speedrun")
    events = [entry async for entry in _stream(services, board.events)]
    await _lose_and_rebuild(services, "speedrun")
    after = {
        period: await _ids(client, f"/v1/boards/speedrun/top10?period={period}")
        for period in ("all", "daily", "weekly")
    }
    assert after == before
    for key in services.keys.period_ranking("speedrun", DAY.id):
        assert await services.redis.pttl(key) > 0
    assert len(events) == 2  # the two not persisted yet (the syncer trims the rest)
    # and it goes on: an update counts in the rebuilt periods
    assert (await _play(client, carol, 10, "speedrun")).status_code == 200
    assert (await _ids(client, "/v1/boards/speedrun/top10?period=daily"))[0] == (
        carol["user_id"],
        70,
    )


async def test_reconcile_finds_and_repairs_a_drifted_period_ranking(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was: reconcile compared the all-time ranking only, so a period ranking that
    drifted from PostgreSQL (a member's score off, a player missing, a ban's kept
    entry lost) stayed wrong until a rebuild."""
    admin = await _admin(client, services)
    assert (await _create(client, admin, SPEEDRUN)).status_code == 201
    alice, bob, carol = [await new_player(client) for _ in range(3)]
    for player, points in ((alice, 60), (bob, 40), (carol, 30)):
        assert (await _play(client, player, points, "speedrun")).status_code == 200
    banned = await client.post(
        f"/v1/admin/players/{carol['user_id']}/ban",
        json={"reason": "bot"},
        headers=bearer(admin["access_token"]),
    )
    assert banned.status_code == 200
    await _sync(services)
    board = services.keys.board("speedrun")
    day_ranked, day_players = board.period_ranking(DAY.id)
    week_ranked, week_players = board.period_ranking(WEEK.id)
    alice_entry = (await services.redis.hget(day_players, alice["user_id"])).decode()
    alice_member = entry_member(alice_entry, alice["user_id"])
    await services.redis.zincrby(day_ranked, 7, alice_member)
    bob_entry = (await services.redis.hget(week_players, bob["user_id"])).decode()
    bob_member = entry_member(bob_entry, bob["user_id"])
    await services.redis.zrem(week_ranked, bob_member)
    await services.redis.hdel(week_players, bob["user_id"])
    await services.redis.hdel(board.period_banned(DAY.id), carol["user_id"])
    before = {
        period: await _ids(client, f"/v1/boards/speedrun/top10?period={period}")
        for period in ("all", "daily", "weekly")
    }

    found = await reconcile(
        services.redis,
        services.pool,
        services.scripts,
        board,
        repair=False,
        clock=services.boards.clock,
    )
    assert found.differences == {
        f"ahead ({DAY.id})": 1,
        f"ban_missing ({DAY.id})": 1,
        f"missing ({WEEK.id})": 1,
    }, found.summary()
    assert not found.repaired
    repaired = await reconcile(
        services.redis, services.pool, services.scripts, board, clock=services.boards.clock
    )
    assert repaired.repaired
    after = {
        period: await _ids(client, f"/v1/boards/speedrun/top10?period={period}")
        for period in ("all", "daily", "weekly")
    }
    assert after["all"] == before["all"]
    assert after["daily"] == [(alice["user_id"], 60), (bob["user_id"], 40)]
    assert after["weekly"] == after["daily"]
    again = await reconcile(
        services.redis, services.pool, services.scripts, board, clock=services.boards.clock
    )
    assert again.clean, again.summary()
    unbanned = await client.post(
        f"/v1/admin/players/{carol['user_id']}/unban", headers=bearer(admin["access_token"])
    )
    assert unbanned.status_code == 200
    assert (await _ids(client, "/v1/boards/speedrun/top10?period=daily"))[-1] == (
        carol["user_id"],
        30,
    )


async def _lose_and_rebuild(services: Services, name: str) -> None:
    """Redis loses every key of the board but its stream; the guard rebuilds it."""
    events = services.keys.board(name).events
    lost = [
        key
        async for key in services.redis.scan_iter(
            match=f"{services.settings.redis_prefix}:{{{name}}}:*"
        )
        if key.decode() != events
    ]
    await services.redis.delete(*lost)
    _, runtime = await services.boards.board(name)
    assert await runtime.guard.check() == "rebuilt"


async def _stream(services: Services, key: str) -> Any:
    for entry in await services.redis.xrange(key):
        yield entry


async def test_updates_racing_a_season_reset_land_wholly_in_one_season(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await _admin(client, services)
    assert (await _create(client, admin, {**SPEEDRUN, "periods": []})).status_code == 201
    players = [await new_player(client) for _ in range(8)]
    rounds = 12
    total = len(players) * rounds

    done = 0
    a_third_done = asyncio.Event()

    async def update(player: dict[str, Any], token: str, increase: int) -> tuple[str, int]:
        nonlocal done
        answer = await client.post(
            "/v1/scores/update",
            json={"score_increase": increase},
            headers={**bearer(player["access_token"]), "X-Action-Token": token},
        )
        assert answer.status_code == 200, answer.text
        done += 1
        if done == total // 3:
            a_third_done.set()
        return player["user_id"], increase

    async def reset() -> httpx.Response:
        await a_third_done.wait()  # while the other updates are in flight
        return await client.post(
            "/v1/admin/boards/speedrun/reset",
            json={"reason": "race"},
            headers=bearer(admin["access_token"]),
        )

    async def plays(player: dict[str, Any]) -> list[tuple[str, int]]:
        """One player's rounds one after another (a token, then its update), so they
        spread over time."""
        return [
            await update(player, await _token(client, player), 1 + i % 7) for i in range(rounds)
        ]

    *played, reset_answer = await asyncio.gather(*(plays(p) for p in players), reset())
    accepted = [answer for answers in played for answer in answers]
    assert len(accepted) == total
    assert reset_answer.status_code == 200, reset_answer.text
    await _sync(services)
    told = _summed(accepted)
    archived = {
        r["user_id"]: r["score"]
        for r in await services.pool.fetch(
            "SELECT user_id::text, score FROM season_standings WHERE board = 'speedrun'"
        )
    }
    current = {
        r["user_id"]: r["score"]
        for r in await services.pool.fetch(
            "SELECT user_id::text, score FROM board_scores WHERE board = 'speedrun'"
        )
    }
    live = {
        e["user_id"]: e["score"]
        for e in (await client.get("/v1/boards/speedrun/leaderboard?limit=100")).json()["data"][
            "leaderboard"
        ]
    }
    assert live == {u: s for u, s in current.items() if s}  # the board is the new season
    assert archived and live, "the reset did not land among the updates"
    for user_id, total in told.items():
        assert archived.get(user_id, 0) + current.get(user_id, 0) == total
    # each update is in one season: the stream order splits them at the reset
    rows = await services.pool.fetch(
        "SELECT s.user_id::text, s.score_change, s.stream_id FROM scores s"
        " WHERE s.board = 'speedrun' ORDER BY s.seq"
    )
    reset_row = await services.pool.fetchrow(
        "SELECT a.stream_id FROM audit_log a WHERE a.event_type = 'season_reset'"
    )
    cut = _stream_key(reset_row["stream_id"])
    before = _summed(
        [(r["user_id"], r["score_change"]) for r in rows if _stream_key(r["stream_id"]) < cut]
    )
    assert before == archived


async def _token(client: httpx.AsyncClient, player: dict[str, Any]) -> str:
    issued = await client.post(
        "/v1/auth/action-token",
        json={"action_type": "run", "session_id": "s1", "board": "speedrun"},
        headers=bearer(player["access_token"]),
    )
    token: str = issued.json()["data"]["action_token"]
    return token


def _summed(pairs: list[tuple[str, int]]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for user_id, points in pairs:
        totals[user_id] = totals.get(user_id, 0) + points
    return totals


def _stream_key(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq)


async def test_the_board_limit_holds_under_concurrent_creates(settings: Settings) -> None:
    """Was: nothing limited boards (2,000 made in 29 s stopped persistence)."""
    limited = dataclasses.replace(settings, max_boards=4)
    services = await Services.open(limited)
    try:
        async with asgi_client(services) as http:
            admin = await _admin(http, services)
            headers = bearer(admin["access_token"])
            answers = await asyncio.gather(
                *(
                    http.post(
                        "/v1/admin/boards",
                        json={"name": f"limit-{i}", "action_types": {"run": 5}},
                        headers=headers,
                    )
                    for i in range(8)
                )
            )
            statuses = sorted(answer.status_code for answer in answers)
            assert statuses == [201] * 3 + [409] * 5  # global and three more
            refused = next(answer for answer in answers if answer.status_code == 409)
            assert refused.json()["error"]["details"] == {"reason": "board_limit", "limit": 4}
            assert len((await http.get("/v1/boards")).json()["data"]) == 4
    finally:
        await services.close()


async def test_metrics_and_detailed_health_show_every_board(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was: both described the default board only (every series labelled `global`)."""
    admin = await _admin(client, services)
    assert (await _create(client, admin, SPEEDRUN)).status_code == 201
    alice, bob = await new_player(client), await new_player(client)
    assert (await _play(client, alice, 70, "speedrun")).status_code == 200
    assert (await _play(client, bob, 30, "speedrun")).status_code == 200
    assert (await _play(client, bob, 5)).status_code == 200
    await _sync(services)

    metrics = (await client.get("/metrics")).text
    assert 'scoreboard_players{board="speedrun"} 2.0' in metrics
    assert 'scoreboard_board_ready{board="speedrun"} 1.0' in metrics
    assert 'scoreboard_sync_committed_events_total{board="speedrun"} 2.0' in metrics
    assert 'scoreboard_sync_lag{board="speedrun"} 0.0' in metrics
    assert 'scoreboard_board_ready{board="global"} 1.0' in metrics

    health = (await client.get("/health/detailed")).json()["data"]
    speedrun = health["components"]["boards"]["speedrun"]
    assert speedrun["status"] == "ready" and speedrun["players"] == 2
    assert speedrun["sync"]["lag"] == 0 and speedrun["sync"]["dead_letters"] == 0
    assert health["components"]["boards"]["global"]["status"] == "ready"


async def test_a_followed_ranking_is_read_only_when_something_changes(
    client: httpx.AsyncClient, services: Services
) -> None:
    """No periodic read while nothing changes; a change is one read; the board's channel
    is followed only while one of its rankings is."""
    admin = await _admin(client, services)
    assert (await _create(client, admin, SPEEDRUN)).status_code == 201
    feeds = services.live
    await services.boards.ready("speedrun")  # built in Redis (its guard's first look)
    subscriber, _ = await feeds.subscribe("speedrun", "daily")
    feed = feeds.feed("speedrun", "daily")
    assert feed is not None and "speedrun" in feeds.channels.held()
    await asyncio.sleep(0.3)  # the opening read, and one once the channel is followed
    settled = feed.reads
    assert settled <= 2
    await asyncio.sleep(1.0)  # ten broadcast intervals of quiet
    assert feed.reads == settled
    runner = await new_player(client)
    assert (await _play(client, runner, 33, "speedrun")).status_code == 200
    message = await subscriber.next(3.0)
    while message is not None and not json.loads(message.sse_data)["leaderboard"]:
        message = await subscriber.next(3.0)
    assert message is not None and json.loads(message.sse_data)["leaderboard"][0]["score"] == 33
    assert feed.reads == settled + 1
    feeds.unsubscribe(subscriber)
    for _ in range(50):
        if "speedrun" not in feeds.channels.held():
            break
        await asyncio.sleep(0.02)
    assert feeds.channels.held() == ["global"]


@pytest.mark.cluster_in_ci
async def test_a_rebuild_keeps_a_banned_players_period_standing_for_the_unban(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was: a rebuilt board's current periods knew nothing of a banned player, so an
    unban after a rebuild gave back the all-time score but not the period ones."""
    admin = await _admin(client, services)
    assert (await _create(client, admin, SPEEDRUN)).status_code == 201
    cheat, other = await new_player(client), await new_player(client)
    assert (await _play(client, cheat, 50, "speedrun")).status_code == 200
    assert (await _play(client, other, 20, "speedrun")).status_code == 200
    await _sync(services)
    assert (await _play(client, cheat, 4, "speedrun")).status_code == 200  # not yet synced
    banned = await client.post(
        f"/v1/admin/players/{cheat['user_id']}/ban",
        json={"reason": "review"},
        headers=bearer(admin["access_token"]),
    )
    assert banned.status_code == 200
    await _lose_and_rebuild(services, "speedrun")
    for period in ("all", "daily", "weekly"):
        assert await _ids(client, f"/v1/boards/speedrun/top10?period={period}") == [
            (other["user_id"], 20)
        ]
    unbanned = await client.post(
        f"/v1/admin/players/{cheat['user_id']}/unban", headers=bearer(admin["access_token"])
    )
    assert unbanned.status_code == 200
    for period in ("all", "daily", "weekly"):
        assert await _ids(client, f"/v1/boards/speedrun/top10?period={period}") == [
            (cheat["user_id"], 54),
            (other["user_id"], 20),
        ], period
