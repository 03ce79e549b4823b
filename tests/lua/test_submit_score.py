"""lua/submit_score.lua and lua/issue_action_token.lua, every branch, on both backends."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace

import pytest

from scoreboard.core import values
from scoreboard.core.errors import InvalidActionToken, RateLimitExceeded, ScoreValidationFailed
from scoreboard.core.settings import RateRule
from tests.lua.board_helpers import Board, pace, read_history


def _uid() -> str:
    return str(uuid.uuid4())


async def _events(board: Board) -> list[dict[str, str]]:
    entries = await board.client.xrange(board.keys.events())
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


async def test_issue_stores_only_the_hash_bound_and_expiring(board: Board) -> None:
    user = _uid()
    token = await board.issue(user, session_id="sess", max_increase=40, ttl_ms=5000)
    stored = await board.client.hgetall(board.token_key(token))
    assert {k.decode(): v.decode() for k, v in stored.items() if k != b"issued_us"} == {
        "user": user,
        "session": "sess",
        "action": "game_completion",
        "max": "40",
        "used": "0",
        "device": "",
    }
    assert 4000 < await board.client.pttl(board.token_key(token)) <= 5000
    raw = [key async for key in board.client.scan_iter(match=board.keys.pattern())]
    assert all(token.encode() not in key for key in raw)


async def test_issue_is_rate_limited(board: Board) -> None:
    user = _uid()
    for _ in range(2):
        await board.issue(user, rule=RateRule(2, 60))
    with pytest.raises(RateLimitExceeded):
        await board.issue(user, rule=RateRule(2, 60))


async def test_accepted_update_moves_the_player_and_emits_the_event(board: Board) -> None:
    user = _uid()
    token = await board.issue(user)
    applied = await board.submit(user, token, 40)
    assert (applied.new_score, applied.new_rank, applied.old_score, applied.old_rank) == (
        40,
        1,
        0,
        None,
    )
    assert applied.total_players == 1 and applied.top and applied.top[0].score == 40
    again = await board.submit(user, await board.issue(user), 2)
    assert (again.new_score, again.old_score, again.old_rank) == (42, 40, 1)
    assert again.sequence == applied.sequence + 1

    events = await _events(board)
    assert [e["type"] for e in events] == ["score_updated", "score_updated"]
    last = events[-1]
    assert last["user_id"] == user and last["delta"] == "2"
    assert (last["old_score"], last["new_score"], last["old_rank"], last["new_rank"]) == (
        "40",
        "42",
        "1",
        "1",
    )
    assert last["session_id"] == "s1" and last["action_type"] == "game_completion"
    assert (last["ip"], last["user_agent"], last["action_data"]) == ("127.0.0.1", "board-test", "")
    assert "top" not in last  # the top N goes to subscribers, not to the stream


async def test_the_event_is_published(board: Board) -> None:
    pubsub = board.client.pubsub()
    await pubsub.ssubscribe(board.keys.updates_channel())  # sharded: the board's slot
    await pubsub.get_message(timeout=1)
    user = _uid()
    await board.submit(user, await board.issue(user), 7)
    message = None
    for _ in range(50):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message:
            break
    await pubsub.aclose()
    assert message is not None
    seq, _, text = message["data"].partition(b" ")
    body = json.loads(text)
    assert seq == b"1"
    assert (body["user_id"], body["new_score"], body["new_rank"], body["seq"]) == (
        user,
        "7",
        "1",
        "1",
    )
    assert body["top"][0][0] == user


async def test_a_token_works_once(board: Board) -> None:
    user = _uid()
    token = await board.issue(user)
    await board.submit(user, token, 10)
    with pytest.raises(InvalidActionToken) as caught:
        await board.submit(user, token, 9)
    assert caught.value.details["reason"] == "already_used"


async def test_the_owners_identical_retry_gets_the_first_answer_again(board: Board) -> None:
    """A client that lost the answer retries with the same token and body: it is told
    what happened, and nothing is applied twice."""
    user, other = _uid(), _uid()
    await board.submit(other, await board.issue(other), 50)
    token = await board.issue(user)
    first = await board.submit(user, token, 10)
    await board.submit(other, await board.issue(other), 1)  # the board moves on
    again = await board.submit(user, token, 10)
    assert again.replayed and not first.replayed
    assert (again.new_score, again.new_rank, again.old_score, again.old_rank) == (
        first.new_score,
        first.new_rank,
        first.old_score,
        first.old_rank,
    )
    assert await board.client.xlen(board.keys.events()) == 3
    assert (
        int(await board.client.zscore(board.keys.leaderboard(), await _member(board, user))) == 10
    )


async def test_a_retried_refusal_is_refused_the_same_way(board: Board) -> None:
    user = _uid()
    token = await board.issue(user, max_increase=50)
    for _ in range(2):
        with pytest.raises(ScoreValidationFailed) as caught:
            await board.submit(user, token, 51)
        assert caught.value.details == {"reason": "above_max", "max_score_increase": 50}
    assert [e["type"] for e in await _events(board)] == ["score_rejected"]


async def test_unknown_and_expired_tokens(board: Board) -> None:
    user = _uid()
    with pytest.raises(InvalidActionToken):
        await board.submit(user, "never-issued", 10)
    token = await board.issue(user, ttl_ms=1)
    await asyncio.sleep(0.05)
    with pytest.raises(InvalidActionToken):
        await board.submit(user, token, 10)
    assert await board.client.zcard(board.keys.leaderboard()) == 0


async def test_another_users_token_is_refused_and_left_alone(board: Board) -> None:
    owner, thief = _uid(), _uid()
    token = await board.issue(owner)
    with pytest.raises(InvalidActionToken):
        await board.submit(thief, token, 10)
    assert (await board.submit(owner, token, 10)).new_score == 10
    rejected = [e for e in await _events(board) if e["type"] == "score_rejected"]
    assert [(e["user_id"], e["status"]) for e in rejected] == [(thief, "TOKEN_NOT_OWNED")]


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("session", {"session_id": "other"}), ("action_type", {"action_type": "boss_kill"})],
)
async def test_a_mismatched_binding_burns_the_token(
    board: Board, field: str, kwargs: dict[str, str]
) -> None:
    user = _uid()
    token = await board.issue(user)
    with pytest.raises(InvalidActionToken) as caught:
        await board.submit(user, token, 10, **kwargs)  # type: ignore[arg-type]
    assert caught.value.details["reason"] == f"{field}_mismatch"
    with pytest.raises(InvalidActionToken):
        await board.submit(user, token, 10)


async def test_matching_binding_given_explicitly_is_accepted(board: Board) -> None:
    user = _uid()
    token = await board.issue(user, session_id="abc")
    applied = await board.submit(user, token, 5, session_id="abc", action_type="game_completion")
    assert applied.new_score == 5


async def test_above_the_maximum_is_refused_and_burns(board: Board) -> None:
    user = _uid()
    token = await board.issue(user, max_increase=50)
    with pytest.raises(ScoreValidationFailed) as caught:
        await board.submit(user, token, 51)
    assert caught.value.details == {"reason": "above_max", "max_score_increase": 50}
    with pytest.raises(InvalidActionToken):
        await board.submit(user, token, 50)
    assert await board.client.zcard(board.keys.leaderboard()) == 0


async def test_the_ceiling_is_exact(board: Board) -> None:
    user = _uid()
    ceiling = 2**53 - 1
    policy = board.with_policy(ceiling=ceiling, anticheat_mode="off")
    first = await board.submit(
        user, await board.issue(user, max_increase=ceiling), ceiling - 5, policy=policy
    )
    assert first.new_score == ceiling - 5
    with pytest.raises(ScoreValidationFailed) as caught:
        await board.submit(user, await board.issue(user), 10, policy=policy)
    assert caught.value.details["reason"] == "overflow"
    last = await board.submit(user, await board.issue(user), 5, policy=policy)
    assert last.new_score == ceiling
    raw = await board.client.zscore(board.keys.leaderboard(), await _member(board, user))
    assert int(raw) == ceiling


async def _member(board: Board, user: str) -> str:
    info = await board.client.hget(board.keys.players(), user)
    return values.entry_member(info.decode(), user)


async def test_a_players_entry_holds_its_tie_and_not_the_user_id_again(board: Board) -> None:
    user = _uid()
    applied = await board.submit(user, await board.issue(user), 40)
    entry = (await board.client.hget(board.keys.players(), user)).decode()
    assert user not in entry
    tie, updated, name = entry.split("|")
    assert tie == values.tie(applied.sequence) and int(updated) > 0 and name
    member = values.member(applied.sequence, user)
    assert await board.client.zscore(board.keys.leaderboard(), member) == 40


async def test_an_entry_holding_the_whole_member_reads_and_moves_as_before(board: Board) -> None:
    """A players entry written before the entries held only the tie names the whole
    member in its place; the board reads it the same way and rewrites it on the move."""
    user, other = _uid(), _uid()
    first = await board.submit(user, await board.issue(user), 40)
    await board.submit(other, await board.issue(other), 10)
    entry = (await board.client.hget(board.keys.players(), user)).decode()
    older = entry.replace(values.tie(first.sequence), values.member(first.sequence, user), 1)
    await board.client.hset(board.keys.players(), user, older)

    around = await board.scripts.read_around(board.board_keys, user, 1)
    assert around.rank == 1 and [e.user_id for e in around.entries] == [user, other]
    again = await board.submit(user, await board.issue(user), 2)
    assert (again.old_score, again.old_rank, again.new_score, again.new_rank) == (40, 1, 42, 1)
    assert await board.client.zcard(board.keys.leaderboard()) == 2
    moved = (await board.client.hget(board.keys.players(), user)).decode()
    assert moved.split("|")[0] == values.tie(again.sequence)


async def test_rate_limit_counts_every_attempt_and_keeps_the_token(board: Board) -> None:
    user = _uid()
    policy = board.with_policy(rate_rule=RateRule(2, 60))
    for _ in range(2):
        with pytest.raises(InvalidActionToken):
            await board.submit(user, "bogus", 1, policy=policy)
    token = await board.issue(user)
    with pytest.raises(RateLimitExceeded) as caught:
        await board.submit(user, token, 1, policy=policy)
    assert int(caught.value.headers["Retry-After"]) >= 1
    assert await board.client.hget(board.token_key(token), "used") == b"0"


async def test_anticheat_points_per_minute(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(windows=pace(100))
    await board.submit(user, await board.issue(user), 60, policy=policy)
    token = await board.issue(user)
    with pytest.raises(ScoreValidationFailed) as caught:
        await board.submit(user, token, 50, policy=policy)
    assert caught.value.details == {
        "reason": "points_per_minute",
        "risk_score": 1.0,
        "reasons": [{"check": "points_per_minute", "risk": 1.0}],
    }
    with pytest.raises(InvalidActionToken):
        await board.submit(user, token, 1, policy=policy)
    assert (await board.submit(user, await board.issue(user), 40, policy=policy)).new_score == 100


async def test_anticheat_impossible_duration(board: Board) -> None:
    user = _uid()
    await board.submit(user, await board.issue(user), 10)
    with pytest.raises(ScoreValidationFailed) as caught:
        await board.submit(user, await board.issue(user), 10, claimed_duration_us=3_600_000_000)
    assert caught.value.details["reason"] == "impossible_duration"
    plausible = await board.submit(user, await board.issue(user), 10, claimed_duration_us=1000)
    assert plausible.new_score == 20


async def test_flag_mode_accepts_and_marks(board: Board) -> None:
    user = _uid()
    policy = replace(board.with_anticheat(windows=pace(10)), anticheat_mode="flag")
    applied = await board.submit(user, await board.issue(user), 50, policy=policy)
    assert applied.flagged and applied.risk == 1.0 and applied.new_score == 50
    event = (await _events(board))[-1]
    assert (event["flagged"], event["reason"]) == ("1", "points_per_minute")


async def test_off_mode_never_judges(board: Board) -> None:
    user = _uid()
    policy = replace(board.with_anticheat(windows=pace(10)), anticheat_mode="off")
    applied = await board.submit(user, await board.issue(user), 50, policy=policy)
    assert not applied.flagged and applied.risk == 0.0


async def test_ties_rank_who_reached_the_score_first(board: Board) -> None:
    first, second, third = _uid(), _uid(), _uid()
    await board.submit(second, await board.issue(second), 30)
    await board.submit(first, await board.issue(first), 20)
    await board.submit(third, await board.issue(third), 30)
    applied = await board.submit(first, await board.issue(first), 10)
    assert applied.new_rank == 3
    assert applied.top is not None
    assert [(e.user_id, e.score, e.rank) for e in applied.top] == [
        (second, 30, 1),
        (third, 30, 2),
        (first, 30, 3),
    ]


async def test_top_is_sent_only_when_the_top_n_changes(board: Board) -> None:
    players = [_uid() for _ in range(4)]
    for points, user in zip((90, 80, 70, 10), players, strict=True):
        await board.submit(user, await board.issue(user), points)
    low = players[3]
    quiet = await board.submit(low, await board.issue(low), 5)
    assert quiet.top is None and quiet.new_rank == 4
    climb = await board.submit(low, await board.issue(low), 60)
    assert climb.top is not None and climb.new_rank == 3
    assert [e.user_id for e in climb.top] == [players[0], players[1], low]


async def test_fifty_parallel_submissions_of_one_token_apply_once(board: Board) -> None:
    """Fifty different requests on one token: one applied, 49 refused."""
    user = _uid()
    token = await board.issue(user)
    results = await asyncio.gather(
        *(board.submit(user, token, 10 + n) for n in range(50)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, InvalidActionToken) for r in results if isinstance(r, Exception))
    assert await board.client.xlen(board.keys.events()) == 1


async def test_fifty_parallel_identical_retries_apply_once(board: Board) -> None:
    """The same request fifty times at once: applied once, the others told the same."""
    user = _uid()
    token = await board.issue(user)
    results = await asyncio.gather(*(board.submit(user, token, 10) for _ in range(50)))
    assert sum(not r.replayed for r in results) == 1
    assert {(r.new_score, r.new_rank) for r in results} == {(10, 1)}
    assert await board.client.xlen(board.keys.events()) == 1
    assert (
        int(await board.client.zscore(board.keys.leaderboard(), await _member(board, user))) == 10
    )


async def test_anticheat_window_forgets_old_points_and_stays_small(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(windows=pace(100, us=600_000))
    for _ in range(5):
        await board.submit(user, await board.issue(user), 20, policy=policy)
    with pytest.raises(ScoreValidationFailed):
        await board.submit(user, await board.issue(user), 1, policy=policy)
    await asyncio.sleep(0.75)
    applied = await board.submit(user, await board.issue(user), 60, policy=policy)
    assert applied.new_score == 160
    history = await read_history(board.client, board.keys.user(user))
    recent = history["paces"].rstrip(";")
    assert 1 <= len(recent.split(",")) <= 7


async def test_a_token_bound_to_a_device_is_refused_from_another_and_burns(board: Board) -> None:
    user = _uid()
    token = await board.issue(user, device="a" * 32)
    with pytest.raises(InvalidActionToken) as caught:
        await board.submit(user, token, 10, device="b" * 32)
    assert caught.value.details["reason"] == "device_mismatch"
    with pytest.raises(InvalidActionToken):  # spent: not even its own device now
        await board.submit(user, token, 10, device="a" * 32)
    rejected = [e for e in await _events(board) if e["type"] == "score_rejected"]
    assert [(e["status"], e["reason"]) for e in rejected] == [("TOKEN_MISMATCH", "device")]
    with pytest.raises(InvalidActionToken):  # nor from a session that named no device
        await board.submit(user, await board.issue(user, device="a" * 32), 10)
    applied = await board.submit(user, await board.issue(user, device="a" * 32), 7, device="a" * 32)
    assert applied.new_score == 7
    # a token issued to a session that named no device binds to none
    assert (await board.submit(user, await board.issue(user), 1, device="c" * 32)).new_score == 8


async def test_a_traced_requests_events_carry_its_trace_context(board: Board) -> None:
    user, parent = _uid(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await board.submit(user, await board.issue(user), 5)
    await board.submit(user, await board.issue(user), 6, trace=parent)
    with pytest.raises(InvalidActionToken):  # a refusal's audit entry carries it too
        await board.submit(
            user, await board.issue(user, session_id="s1"), 1, session_id="s2", trace=parent
        )
    untraced, traced, refused = await _events(board)
    assert "trace" not in untraced  # not traced: the entry is as it always was
    assert traced["type"] == "score_updated" and traced["trace"] == parent
    assert refused["type"] == "score_rejected" and refused["trace"] == parent
