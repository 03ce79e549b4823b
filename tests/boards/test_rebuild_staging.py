"""Staging a rebuilt board sends several rounds at once: a round that fails ends the
staging with the store's error, and the rounds still in flight are stopped, not left
writing behind a rebuild that gave up (a cluster's pipelines); on one Redis, the
connection whose replies were left unread is closed, never handed to the next command.
(That the rounds together stage exactly the board is the big board's test in
test_reconcile.py: rebuilt, then reconciled clean.)"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis.exceptions

from scoreboard.boards import rebuild
from scoreboard.boards.rebuild import Standing
from scoreboard.core.errors import RedisUnavailable


class _Pipeline:
    def __init__(self, client: _Client) -> None:
        self.client = client

    def execute_command(self, *_: Any) -> None:
        pass

    async def execute(self) -> list[Any]:
        self.client.started += 1
        number = self.client.started
        if number == 1:
            await asyncio.sleep(0.01)
            raise redis.exceptions.ConnectionError("gone")
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            self.client.cancelled.append(number)
            raise
        self.client.finished.append(number)
        return []


class _Client:
    def __init__(self) -> None:
        self.started = 0
        self.finished: list[int] = []
        self.cancelled: list[int] = []

    async def unlink(self, *_: str) -> int:
        return 0

    def pipeline(self, transaction: bool) -> _Pipeline:
        return _Pipeline(self)


async def test_a_failed_round_stops_the_rounds_in_flight_of_a_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rebuild, "CHUNK", 2)
    monkeypatch.setattr(rebuild, "COMMANDS_A_ROUND", 2)
    standings = {f"user-{n}": Standing(f"p{n}", n + 1, n + 1, 0) for n in range(40)}
    client = _Client()
    with pytest.raises(RedisUnavailable):
        await rebuild._stage(client, ("board", "players", "banned"), standings)  # type: ignore[arg-type]
    # the rounds sent with the failed one were stopped; no round went out after it
    assert client.started == rebuild.ROUNDS_IN_FLIGHT
    assert client.cancelled == list(range(2, rebuild.ROUNDS_IN_FLIGHT + 1))
    await asyncio.sleep(0.3)
    assert client.finished == [] and client.started == rebuild.ROUNDS_IN_FLIGHT


async def test_a_refused_command_leaves_no_reply_unread_on_the_connection(
    lua_backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command Redis refuses in the middle of a round, with rounds sent behind it:
    the staging fails with Redis's error, and the client's next commands read their
    own replies, not the staging's."""
    monkeypatch.setattr(rebuild, "CHUNK", 2)
    real = rebuild._staging_commands
    prefix = f"sbt{uuid.uuid4().hex[:8]}"
    staged = (f"{prefix}:board", f"{prefix}:players", f"{prefix}:banned")

    def refused_midway(*args: Any) -> Any:
        for number, command in enumerate(real(*args)):
            if number == 5:
                yield ("HSET", staged[1])  # no field: Redis refuses it
            yield command

    monkeypatch.setattr(rebuild, "_staging_commands", refused_midway)
    standings = {f"user-{n}": Standing(f"p{n}", n + 1, n + 1, 0) for n in range(200)}
    client = lua_backend
    try:
        with pytest.raises(redis.exceptions.ResponseError):
            await rebuild._stage(client, staged, standings)
        await client.set(f"{prefix}:after", "mine")
        for _ in range(20):
            assert await client.get(f"{prefix}:after") == b"mine"
    finally:
        await client.delete(*staged, f"{prefix}:after")
