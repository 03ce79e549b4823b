"""Every key and channel of a board hashes to the board's one cluster slot, as Python
computes it and as the cluster itself says (`CLUSTER KEYSLOT`)."""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot

from scoreboard.storage.keys import BoardKeys, Keys

SAMPLES = {
    "token_hash": "ab" * 32,
    "rule": "score_update",
    "subject": "203.0.113.7",
    "user_id": str(uuid.uuid4()),
    "window_start_s": 1_796_000_000,
    "period_id": "daily:2026-12-01",
    "digest": "cd" * 16,
    "device": "ef" * 16,
}
BOARDS = ["global", "speedrun", "a", "z-9_x", "x" * 64]


def board_names(board: BoardKeys) -> Iterator[tuple[str, str]]:
    """(builder, name) for every key and channel a board's builders make."""
    for name, member in inspect.getmembers(type(board)):
        if name.startswith("_") or name in ("keys", "name"):
            continue
        if isinstance(member, property | type(BoardKeys.leaderboard)):
            value = getattr(board, name)
        elif inspect.isfunction(member):
            params = list(inspect.signature(member).parameters)[1:]
            value = getattr(board, name)(*(SAMPLES[p] for p in params))
        else:
            continue
        if dataclasses.is_dataclass(value):  # a ranking's keys
            value = dataclasses.astuple(value)  # type: ignore[arg-type]
        for key in value if isinstance(value, tuple) else (value,):
            yield name, key
    # and every builder of `Keys` that takes a board
    for name, member in inspect.getmembers(Keys, inspect.isfunction):
        params = list(inspect.signature(member).parameters)[1:]
        if name.startswith("_") or "board" not in params or name == "board":
            continue
        args = [board.name if p == "board" else SAMPLES[p] for p in params]
        value = getattr(board.keys, name)(*args)
        for key in value if isinstance(value, tuple) else (value,):
            yield f"Keys.{name}", key


def test_every_builder_is_sampled() -> None:
    names = [name for name, _ in board_names(Keys("sb").board("b"))]
    assert {"leaderboard", "events", "updates_channel", "period_ranking", "season"} <= set(names)
    assert "ranking" in names
    assert {"Keys.dead_letters", "Keys.sync_health", "Keys.sync_failures"} <= set(names)


@pytest.fixture(scope="module")
def cluster(cluster_url: str) -> Iterator[redis.RedisCluster]:
    client = redis.RedisCluster.from_url(cluster_url)
    yield client
    client.close()


@pytest.mark.parametrize("board", BOARDS)
def test_a_board_is_one_slot(cluster: redis.RedisCluster, board: str) -> None:
    keys = Keys("sb", 3).board(board)
    expected = key_slot(f"{{{board}}}".encode().strip(b"{}")) if board else 0
    node = cluster.get_random_node()
    for builder, name in board_names(keys):
        assert key_slot(name.encode()) == expected, (builder, name)
        assert cluster.execute_command("CLUSTER KEYSLOT", name, target_nodes=node) == expected, (
            builder,
            name,
        )


def test_boards_spread_over_the_masters(cluster: redis.RedisCluster) -> None:
    owners = {
        cluster.get_node_from_key(Keys("sb").board(f"board-{i}").leaderboard).name
        for i in range(12)
    }
    assert len(owners) == 3
