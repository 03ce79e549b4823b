"""The Python client (clients/python) against a real server: a player's whole flow,
the safe retry after a lost answer, the reads, the admin calls and the live feed.

Was: no client library or example beyond curl."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from scoreboard_client import AsyncClient, Client, ScoreboardError

from scoreboard.core.settings import Settings
from tests.auth_helpers import PASSWORD, create_admin, new_username
from tests.conftest import RunningServer, server_env, serving

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def client_server(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    env = server_env(settings)
    with serving(env, tmp_path) as (server,):
        yield server, env


def _player(client: Client) -> str:
    name = new_username()
    client.register(name, f"{name}@example.com", PASSWORD)
    client.login(name, PASSWORD)
    return name


def test_the_generated_types_are_the_api_documents() -> None:
    """The clients' types come from the one contract: regenerated, they are unchanged."""
    done = subprocess.run(
        [sys.executable, str(REPO / "clients" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_player_plays_reads_and_refreshes(
    client_server: tuple[RunningServer, dict[str, str]],
) -> None:
    server, _env = client_server
    with Client(server.url) as client:
        name = _player(client)
        me = client.session.user_id
        answer = client.play(52, session_id="match-1", action_data={"level": 2, "time_taken": 30.0})
        assert (answer["new_score"], answer["rank"], answer["board"]) == (52, 1, "global")

        issued = client.action_token("game_completion", "match-2")
        first = client.submit_score(8, action_token=issued["action_token"])
        again = client.submit_score(8, action_token=issued["action_token"])  # a client's retry
        assert first == again and first["new_score"] == 60  # counted once
        with pytest.raises(ScoreboardError) as refused:
            client.submit_score(9, action_token=issued["action_token"])
        assert (refused.value.code, refused.value.details["reason"]) == (
            "INVALID_ACTION_TOKEN",
            "already_used",
        )

        top = client.top10()
        assert top["leaderboard"][0]["username"] == name
        assert client.leaderboard(limit=5)["limit"] == 5
        assert client.around(me, radius=1)["rank"] == 1
        assert client.player(me)["periods"]["all"]["score"] == 60
        assert any(board["name"] == "global" for board in client.boards())

        old = client.session.refresh_token
        client.session.expires_at = 0  # as if the access token were about to expire
        client.top10()
        client.play(1, session_id="match-3")
        assert client.session.refresh_token != old  # refreshed before use

        client.logout()
        with pytest.raises(ScoreboardError) as logged_out:
            client.refresh()
        assert logged_out.value.code == "INVALID_TOKEN"


class LosesTheFirstUpdateAnswer(httpx.AsyncBaseTransport):
    """The server applies the first score update, and its answer never arrives."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.updates = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if request.url.path == "/v1/scores/update":
            self.updates += 1
            if self.updates == 1:
                await response.aread()
                raise httpx.ReadError("connection reset", request=request)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_lost_answer_is_retried_with_the_same_token_and_counts_once(
    client_server: tuple[RunningServer, dict[str, str]],
) -> None:
    server, _env = client_server
    transport = LosesTheFirstUpdateAnswer()
    async with httpx.AsyncClient(transport=transport, timeout=10) as http:
        client = AsyncClient(server.url, http=http)
        name = new_username()
        await client.register(name, f"{name}@example.com", PASSWORD)
        await client.login(name, PASSWORD)
        answer = await client.play(40, session_id="match-1")
        assert transport.updates == 2  # sent again after the lost answer
        assert answer["new_score"] == 40  # and counted once
        assert (await client.player(client.session.user_id))["periods"]["all"]["score"] == 40


async def test_the_live_feed_gives_the_board_then_each_change(
    client_server: tuple[RunningServer, dict[str, str]],
) -> None:
    server, _env = client_server
    async with AsyncClient(server.url) as watcher, AsyncClient(server.url) as player:
        name = new_username()
        await player.register(name, f"{name}@example.com", PASSWORD)
        await player.login(name, PASSWORD)
        updates = watcher.follow()
        first = await asyncio.wait_for(updates.__anext__(), 10)
        assert "leaderboard" in first
        await player.play(33, session_id="match-1")
        while True:
            update = await asyncio.wait_for(updates.__anext__(), 10)
            if any(entry["username"] == name for entry in update["leaderboard"]):
                break
        await updates.aclose()


async def test_the_live_feed_reconnects_and_resumes() -> None:
    """A feed whose connection ends is opened again, with the last event's id."""
    seen: list[str | None] = []
    bodies = [
        'event: leaderboard_update\nid: 1\ndata: {"leaderboard": [], "n": 1}\n\n',
        'event: leaderboard_update\nid: 2\ndata: {"leaderboard": [], "n": 2}\n\n',
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("last-event-id"))
        body = bodies[min(len(seen), len(bodies)) - 1]
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = AsyncClient("http://scores.test", http=http)
        updates = client.follow()
        got = [await updates.__anext__(), await updates.__anext__()]
        await updates.aclose()
    assert [update["n"] for update in got] == [1, 2]  # type: ignore[typeddict-item]
    assert seen == [None, "1"]


def test_an_admin_runs_the_admin_calls(
    client_server: tuple[RunningServer, dict[str, str]], tmp_path: Path
) -> None:
    server, env = client_server
    admin_name = create_admin(env, tmp_path)
    board = f"b{uuid.uuid4().hex[:10]}"
    with Client(server.url) as admin, Client(server.url) as player:
        admin.login(admin_name, PASSWORD)
        player_name = _player(player)
        target = player.session.user_id
        created = admin.create_board(board, {"round": 50}, ["daily"])
        assert [period["kind"] for period in created["periods"]] == ["daily"]
        assert player.play(20, session_id="s", action_type="round", board=board)["board"] == board
        assert player.top10(board, "daily")["leaderboard"][0]["user_id"] == target

        assert admin.adjust(target, 5, "bonus")["new_score"] == 5  # on the global board
        assert admin.remove_score(target, "cleanup")["user_id"] == target
        assert admin.ban(target, "bot")["banned"] is True
        with pytest.raises(ScoreboardError) as ended_session:
            player.play(1, session_id="s")
        assert ended_session.value.code == "INVALID_TOKEN"  # a ban ends every session
        with pytest.raises(ScoreboardError) as banned:
            player.login(player_name, PASSWORD)
        assert banned.value.code == "INSUFFICIENT_PERMISSIONS"
        assert admin.unban(target)["banned"] is False
        player.login(player_name, PASSWORD)
        ended = admin.reset_season(board, "new season")
        assert ended["ended_season"] == 1 and ended["archive"] == "season:1"
        assert {"items", "next_cursor"} <= set(admin.flagged(limit=5))
        assert {"items", "next_cursor"} <= set(admin.history(target, limit=5))
        assert {"items", "next_cursor"} <= set(admin.audit(event_type="admin_ban", limit=5))
        with pytest.raises(ScoreboardError) as forbidden:
            player.flagged()
        assert forbidden.value.code == "INSUFFICIENT_PERMISSIONS"


def test_a_session_opened_from_a_device_holds_tokens_only_it_can_spend(
    client_server: tuple[RunningServer, dict[str, str]],
) -> None:
    server, _env = client_server
    name = new_username()
    with Client(server.url) as phone, Client(server.url) as tablet:
        phone.register(name, f"{name}@example.com", PASSWORD)
        phone.login(name, PASSWORD, device={"id": f"phone-{name}"})
        tablet.login(name, PASSWORD, device={"fingerprint": "ab" * 32})
        issued = phone.action_token("game_completion", "match-1")
        with pytest.raises(ScoreboardError) as caught:
            tablet.submit_score(5, action_token=issued["action_token"])
        assert caught.value.details["reason"] == "device_mismatch"
        assert phone.play(5, session_id="match-2")["new_score"] == 5
