"""submit_score.lua counts each update in the board's all-time ranking and in the
current period of each of its periods, atomically, on both Lua runtimes."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime

from scoreboard.core.periods import period_at
from scoreboard.scoring.updates import fingerprint
from scoreboard.storage.scripts import ScoreApplied, ScoreSubmission
from tests.lua.board_helpers import Board

PERIODS = ("daily", "weekly", "monthly")


def offset_to(instant: str) -> int:
    """The clock offset (us) that puts Redis TIME at this UTC instant, give or take the
    few milliseconds a test takes."""
    target = datetime.fromisoformat(instant).replace(tzinfo=UTC).timestamp()
    return int((target - time.time()) * 1_000_000)


async def play(board: Board, user_id: str, increase: int, at: str) -> ScoreApplied:
    token = await board.issue(user_id)
    return await board.submit(
        user_id, token, increase, policy=board.with_policy(clock_offset_us=offset_to(at))
    )


def standing(applied: ScoreApplied) -> dict[str, tuple[str, int, int]]:
    return {p.kind: (p.period_id, p.score, p.rank) for p in applied.periods}


async def test_an_update_counts_in_every_current_period(board: Board) -> None:
    board.periods = PERIODS
    alice, bob = str(uuid.uuid4()), str(uuid.uuid4())
    await play(board, alice, 30, "2026-11-30T12:00:00")
    applied = await play(board, bob, 50, "2026-11-30T13:00:00")
    assert (applied.new_score, applied.new_rank) == (50, 1)
    assert standing(applied) == {
        "daily": ("daily:2026-11-30", 50, 1),
        "weekly": ("weekly:2026-W49", 50, 1),
        "monthly": ("monthly:2026-11", 50, 1),
    }
    # the next day: a new daily ranking, the same week, a new month
    applied = await play(board, alice, 5, "2026-12-01T00:00:00.500")
    assert (applied.new_score, applied.new_rank) == (35, 2)
    assert standing(applied) == {
        "daily": ("daily:2026-12-01", 5, 1),
        "weekly": ("weekly:2026-W49", 35, 2),
        "monthly": ("monthly:2026-12", 5, 1),
    }
    page = await board.scripts.read_range(board.board_keys, 0, 9)
    assert [(e.user_id, e.score) for e in page.entries] == [(bob, 50), (alice, 35)]
    old_day = board.board_keys.period_ranking("daily:2026-11-30")
    assert await board.client.zcard(old_day[0]) == 2  # yesterday's ranking, untouched


async def test_the_last_millisecond_of_a_day_counts_in_that_day(board: Board) -> None:
    board.periods = ("daily",)
    alice = str(uuid.uuid4())
    before = await play(board, alice, 10, "2026-12-01T23:59:59.500")
    after = await play(board, alice, 10, "2026-12-02T00:00:00.500")
    assert standing(before)["daily"][0] == "daily:2026-12-01"
    assert standing(after)["daily"] == ("daily:2026-12-02", 10, 1)


async def test_ties_in_a_period_go_to_the_earlier_achiever(board: Board) -> None:
    board.periods = ("daily",)
    first, second, third = (str(uuid.uuid4()) for _ in range(3))
    await play(board, third, 100, "2026-12-01T08:00:00")  # ahead all-time, not today
    await play(board, first, 20, "2026-12-02T09:00:00")
    await play(board, second, 20, "2026-12-02T09:00:01")
    applied = await play(board, third, 20, "2026-12-02T09:00:02")
    assert standing(applied)["daily"] == ("daily:2026-12-02", 20, 3)
    day = board.board_keys.period_ranking("daily:2026-12-02")
    page = await board.scripts.read_range(board.board_keys, 0, 0)
    assert page.entries[0].user_id == third  # all-time: 120
    members = await board.client.zrevrange(day[0], 0, -1)
    assert [m.decode().partition(":")[2] for m in members] == [first, second, third]


async def test_period_keys_expire_a_grace_after_their_period(board: Board) -> None:
    board.periods = ("daily", "weekly")
    grace_ms = 60_000
    alice = str(uuid.uuid4())
    token = await board.issue(alice)
    at = "2026-12-02T10:00:00"
    policy = board.with_policy(clock_offset_us=offset_to(at), period_grace_ms=grace_ms)
    await board.submit(alice, token, 7, policy=policy)
    for kind in board.periods:
        period = period_at(
            kind, int(datetime.fromisoformat(at).replace(tzinfo=UTC).timestamp() * 1000)
        )
        for key in board.board_keys.period_ranking(period.id):
            expires_ms = await board.client.pexpiretime(key)
            # the real clock runs behind the offset one: compare with the offset removed
            offset_ms = offset_to(at) // 1000
            assert abs(expires_ms + offset_ms - (period.ends_ms + grace_ms)) < 5_000, key


async def test_the_stream_names_the_periods(board: Board) -> None:
    board.periods = ("daily", "monthly")
    alice = str(uuid.uuid4())
    await play(board, alice, 3, "2026-12-02T10:00:00")
    entries = await board.client.xrange(board.board_keys.events)
    fields = {k.decode(): v.decode() for k, v in entries[-1][1].items()}
    assert fields["periods"] == "daily:2026-12-02,monthly:2026-12"


async def test_a_board_without_periods_writes_no_period_key(board: Board) -> None:
    alice = str(uuid.uuid4())
    applied = await play(board, alice, 3, "2026-12-02T10:00:00")
    assert applied.periods == ()
    keys = [key async for key in board.client.scan_iter(match=f"{board.keys.prefix}:*:lb:*")]
    assert keys == []


async def test_a_replayed_update_gives_the_periods_again(board: Board) -> None:
    board.periods = ("daily",)
    alice = str(uuid.uuid4())
    token = await board.issue(alice)
    policy = board.with_policy(clock_offset_us=offset_to("2026-12-02T10:00:00"))
    first = await board.submit(alice, token, 9, policy=policy)
    again = await board.submit(alice, token, 9, policy=policy)
    assert again.replayed and again.periods == first.periods


async def test_a_period_named_by_a_clock_that_is_behind_is_corrected(board: Board) -> None:
    """The caller names the periods from its own clock; when Redis TIME is already in
    the next one, the script changes nothing, names the current ones, and the wrapper
    sends the update again with their keys: nothing lands in the old day."""
    alice = str(uuid.uuid4())
    at = "2026-12-02T10:00:00"
    policy = board.with_policy(clock_offset_us=offset_to(at))
    stale = (period_at("daily", ms_of("2026-12-01T23:59:59.999")),)
    token = await board.issue(alice)
    submission = await _submission(board, alice, token, 4)
    applied = await board.scripts.submit_score(board.board_keys, submission, policy, stale)
    assert [(p.period_id, p.score) for p in applied.periods] == [("daily:2026-12-02", 4)]
    for key in board.board_keys.period_ranking("daily:2026-12-01"):
        assert not await board.client.exists(key)
    assert applied.new_score == 4  # counted once


def ms_of(instant: str) -> int:
    return int(datetime.fromisoformat(instant).replace(tzinfo=UTC).timestamp() * 1000)


async def _submission(board: Board, user_id: str, token: str, increase: int) -> ScoreSubmission:
    return ScoreSubmission(
        user_id=user_id,
        username="alice",
        session_id=None,
        action_type=None,
        increase=increase,
        token_hash=hashlib.sha256(token.encode()).hexdigest(),
        claimed_duration_us=None,
        event_id=str(uuid.uuid4()),
        ip="127.0.0.1",
        user_agent="test",
        action_data_json="",
        fingerprint=fingerprint(increase, None, None, ""),
    )


async def test_a_period_follows_a_player_whose_all_time_entry_moved_alone(board: Board) -> None:
    """An admin's adjustment gives the player a new all-time member and leaves the
    periods alone: the next update still finds the player's period entry."""
    board.periods = ("daily",)
    alice = str(uuid.uuid4())
    await play(board, alice, 30, "2026-11-30T12:00:00")
    await board.scripts.adjust_score(
        board.board_keys,
        user_id=alice,
        username="alice",
        delta=100,
        ceiling=2**53 - 1,
        top_n=3,
        event_id=str(uuid.uuid4()),
        admin_id=str(uuid.uuid4()),
        reason="test",
    )
    applied = await play(board, alice, 5, "2026-11-30T12:00:01")
    assert applied.new_score == 135
    assert standing(applied) == {"daily": ("daily:2026-11-30", 35, 1)}
    day = board.board_keys.period_ranking("daily:2026-11-30")
    assert await board.client.zcard(day[0]) == 1  # one entry per player, never two
