"""The read scripts (read_range, read_around, scan_board, read_standings) on both
backends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from scoreboard.core.errors import BoardUnavailable
from scoreboard.core.values import member, member_user
from tests.lua.board_helpers import Board


@pytest_asyncio.fixture
async def seeded(lua_backend: aioredis.Redis) -> AsyncIterator[tuple[Board, list[str]]]:
    board = Board(lua_backend)
    users = [str(uuid.uuid4()) for _ in range(6)]
    for points, user in zip((60, 50, 40, 30, 20, 10), users, strict=True):
        await board.submit(user, await board.issue(user), points)
    yield board, users
    await board.cleanup()


async def test_read_range_pages_in_rank_order(seeded: tuple[Board, list[str]]) -> None:
    board, users = seeded
    page = await board.scripts.read_range(board.board_keys, 2, 4)
    assert page.total_players == 6 and page.sequence == 6
    assert [(e.rank, e.user_id, e.score) for e in page.entries] == [
        (3, users[2], 40),
        (4, users[3], 30),
        (5, users[4], 20),
    ]
    assert all(e.username.startswith("name-") and e.updated_ms for e in page.entries)


async def test_read_range_past_the_end_is_empty(seeded: tuple[Board, list[str]]) -> None:
    board, _ = seeded
    page = await board.scripts.read_range(board.board_keys, 10, 19)
    assert page.entries == [] and page.total_players == 6


async def test_read_around_centres_on_the_player(seeded: tuple[Board, list[str]]) -> None:
    board, users = seeded
    around = await board.scripts.read_around(board.board_keys, users[1], 2)
    assert around.rank == 2
    assert [e.rank for e in around.entries] == [1, 2, 3, 4]
    alone = await board.scripts.read_around(board.board_keys, users[5], 0)
    assert (alone.rank, [e.score for e in alone.entries]) == (6, [10])


async def test_read_around_an_unranked_player(seeded: tuple[Board, list[str]]) -> None:
    board, _ = seeded
    around = await board.scripts.read_around(board.board_keys, str(uuid.uuid4()), 3)
    assert (around.rank, around.entries, around.total_players) == (0, [], 6)


async def test_reads_of_a_lost_board_say_so_instead_of_empty(
    seeded: tuple[Board, list[str]],
) -> None:
    """Without its state the board is lost: a read answers 'not ready', never 0."""
    board, users = seeded
    await board.client.delete(board.keys.board_state())
    with pytest.raises(BoardUnavailable):
        await board.scripts.read_range(board.board_keys, 0, 9)
    with pytest.raises(BoardUnavailable):
        await board.scripts.read_around(board.board_keys, users[0], 1)


async def test_scan_board_reads_every_player_in_small_chunks(
    seeded: tuple[Board, list[str]],
) -> None:
    """lua/scan_board.lua: every player once a scan is over, each chunk with the
    board's update sequence, scores as the sorted set holds them."""
    board, users = seeded
    await board.scripts.ban_player(board.board_keys, users[5], 3)
    found: dict[str, str] = {}
    for banned in (False, True):
        cursor, calls = "0", 0
        while True:
            chunk = await board.scripts.scan_board(
                board.board_keys, banned=banned, cursor=cursor, count=2
            )
            assert chunk.seq == 7 and chunk.ranked == chunk.entries == 5
            found.update((user, f"{'banned ' if banned else ''}{v}") for user, v in chunk.values)
            cursor, calls = chunk.cursor, calls + 1
            if cursor == "0":
                break
    assert {user: found[user] for user in users[:5]} == dict(
        zip(users[:5], ("60", "50", "40", "30", "20"), strict=True)
    )
    assert found[users[5]].startswith("banned ") and found[users[5]].endswith("|10")


async def test_scan_board_counts_a_stray_member_in_the_same_instant(
    seeded: tuple[Board, list[str]],
) -> None:
    """A member with no players entry behind it is read like any other; the chunk's
    counts of members and entries tell it apart."""
    board, _ = seeded
    stray = member(1_000, str(uuid.uuid4()))
    await board.client.zadd(board.board_keys.leaderboard, {stray: 5})
    chunk = await board.scripts.scan_board(board.board_keys, banned=False, cursor="0", count=100)
    assert chunk.cursor == "0" and (chunk.ranked, chunk.entries) == (7, 6)
    assert (member_user(stray), "5") in chunk.values


async def test_read_standings_reads_players_in_one_instant(
    seeded: tuple[Board, list[str]],
) -> None:
    board, users = seeded
    await board.scripts.ban_player(board.board_keys, users[1], 3)
    stranger = str(uuid.uuid4())
    seq, standings = await board.scripts.read_standings(
        board.board_keys, [users[0], users[1], stranger]
    )
    assert seq == 7
    assert standings[users[0]].score == 60 and standings[users[0]].banned is None
    assert standings[users[1]].score is None and (standings[users[1]].banned or "").endswith("|50")
    assert standings[stranger].score is None and standings[stranger].banned is None
