"""ban_player.lua, unban_player.lua, adjust_score.lua and record_audit.lua, on real
Redis and on fakeredis."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace

import pytest

from scoreboard.auth.audit import AuditTrail
from scoreboard.core.errors import BoardUnavailable, InsufficientPermissions, InvalidRequest
from scoreboard.core.settings import Settings
from scoreboard.storage.scripts import Adjusted
from tests.lua.board_helpers import Board

TOP_N = 3


def _uid() -> str:
    return str(uuid.uuid4())


async def _ranking(board: Board) -> list[tuple[str, int]]:
    page = await board.scripts.read_range(board.board_keys, 0, -1)
    return [(entry.user_id, entry.score) for entry in page.entries]


async def _whole(board: Board) -> None:
    """The board's counts agree, as every script checks before it writes."""
    keys = board.board_keys
    players = int(await board.client.hget(keys.state, "players"))
    assert (
        players
        == await board.client.hlen(keys.players)
        == await board.client.zcard(keys.leaderboard)
    )


async def _play(board: Board, scores: dict[str, int]) -> None:
    for user, score in scores.items():
        await board.submit(user, await board.issue(user), score)


async def _adjust(board: Board, user: str, delta: int | None) -> Adjusted:
    return await board.scripts.adjust_score(
        board.board_keys,
        user_id=user,
        username="adjusted",
        delta=delta,
        ceiling=1000,
        top_n=TOP_N,
        event_id=_uid(),
        admin_id=_uid(),
        reason="test",
    )


async def test_a_ban_takes_the_player_off_and_an_unban_puts_them_back_in_place(
    board: Board,
) -> None:
    a, b, c = _uid(), _uid(), _uid()
    await _play(board, {a: 50, b: 50, c: 10})  # a reached 50 first: a above b
    banned = await board.scripts.ban_player(board.board_keys, a, TOP_N)
    assert (banned.rank, banned.score, banned.changed) == (1, 50, True)
    assert await _ranking(board) == [(b, 50), (c, 10)]
    await _whole(board)
    again = await board.scripts.ban_player(board.board_keys, a, TOP_N)
    assert not again.changed and again.score == 50
    back = await board.scripts.unban_player(board.board_keys, a, TOP_N)
    assert (back.rank, back.score, back.changed) == (1, 50, True)
    assert await _ranking(board) == [(a, 50), (b, 50), (c, 10)]
    await _whole(board)


async def test_a_ban_and_an_unban_of_an_entry_holding_the_whole_member(board: Board) -> None:
    """An entry written before the entries held only the tie (its whole member in the
    tie's place) is banned and unbanned in place, and comes back in the short form."""
    a, b = _uid(), _uid()
    await _play(board, {a: 50, b: 50})
    keys = board.board_keys
    entry = (await board.client.hget(keys.players, a)).decode()
    tie = entry.split("|")[0]
    await board.client.hset(keys.players, a, entry.replace(tie, f"{tie}:{a}", 1))
    banned = await board.scripts.ban_player(keys, a, TOP_N)
    assert (banned.rank, banned.score) == (1, 50)
    assert await _ranking(board) == [(b, 50)]
    back = await board.scripts.unban_player(keys, a, TOP_N)
    assert (back.rank, back.score) == (1, 50)
    assert await _ranking(board) == [(a, 50), (b, 50)]
    assert (await board.client.hget(keys.players, a)).decode() == entry
    await _whole(board)
    await board.client.hset(keys.players, a, entry.replace(tie, f"{tie}:{a}", 1))
    adjusted = await _adjust(board, a, 5)
    assert (adjusted.old_score, adjusted.new_score) == (50, 55)
    assert await _ranking(board) == [(a, 55), (b, 50)]
    await _whole(board)


async def test_a_banned_player_gets_no_token_and_no_update(board: Board) -> None:
    user = _uid()
    token = await board.issue(user)
    await board.scripts.ban_player(board.board_keys, user, TOP_N)
    with pytest.raises(InsufficientPermissions):
        await board.submit(user, token, 10)
    with pytest.raises(InsufficientPermissions):
        await board.issue(user)
    assert await board.client.hget(board.token_key(token), "used") == b"0"
    await board.scripts.unban_player(board.board_keys, user, TOP_N)
    assert (await board.submit(user, token, 10)).new_score == 10


async def test_a_ban_of_a_player_without_a_score(board: Board) -> None:
    user = _uid()
    assert (await board.scripts.ban_player(board.board_keys, user, TOP_N)).changed
    back = await board.scripts.unban_player(board.board_keys, user, TOP_N)
    assert (back.rank, back.score, back.changed) == (0, 0, True)
    assert await _ranking(board) == []
    await _whole(board)


async def test_bans_wait_while_a_rebuild_holds_the_board(board: Board) -> None:
    user = _uid()
    await _play(board, {user: 5})
    await board.client.set(board.board_keys.rebuild_lock, "someone")
    with pytest.raises(BoardUnavailable):
        await board.scripts.ban_player(board.board_keys, user, TOP_N)
    assert await _ranking(board) == [(user, 5)]


async def test_bans_go_on_while_a_reconcile_holds_the_stream(board: Board) -> None:
    """A reconcile's trim hold keeps the syncer from trimming the stream, and nothing
    else: bans go through; trimming waits for the hold and for a rebuild's lock."""
    user = _uid()
    await _play(board, {user: 5})
    keys = board.board_keys
    await board.client.set(keys.trim_hold, "a reconcile")
    assert await board.scripts.trim_stream(keys, "0-0") is None
    banned = await board.scripts.ban_player(keys, user, TOP_N)
    assert banned.changed
    await board.client.delete(keys.trim_hold)
    await board.client.set(keys.rebuild_lock, "a rebuild")
    assert await board.scripts.trim_stream(keys, "0-0") is None
    await board.client.delete(keys.rebuild_lock)
    assert await board.scripts.trim_stream(keys, "0-0") == 0


async def test_a_hold_is_kept_and_released_by_its_owner_only(board: Board) -> None:
    keys = board.board_keys
    await board.client.set(keys.trim_hold, "mine", px=1000)
    assert await board.scripts.keep_hold(keys, "trim", "mine", 60_000)
    assert 1000 < await board.client.pttl(keys.trim_hold) <= 60_000
    assert not await board.scripts.keep_hold(keys, "trim", "theirs", 60_000)
    assert not await board.scripts.release_hold(keys, "trim", "theirs")
    assert await board.client.get(keys.trim_hold) == b"mine"
    assert await board.scripts.release_hold(keys, "trim", "mine")
    assert not await board.client.exists(keys.trim_hold)
    assert not await board.scripts.keep_hold(keys, "rebuild", "mine", 60_000)  # none held
    assert not await board.client.exists(keys.rebuild_lock)


async def test_a_ban_is_announced_with_the_new_top(board: Board) -> None:
    a, b = _uid(), _uid()
    await _play(board, {a: 30, b: 20})
    pubsub = board.client.pubsub()
    await pubsub.ssubscribe(board.board_keys.updates_channel)  # sharded: the board's slot
    await pubsub.get_message(timeout=1)
    await board.scripts.ban_player(board.board_keys, a, TOP_N)
    message = None
    for _ in range(20):
        message = await pubsub.get_message(timeout=0.2)
        if message and message["type"] == "smessage":
            break
    assert message is not None
    body = json.loads(message["data"].partition(b" ")[2])
    assert (body["user_id"], body["new_rank"], body["delta"]) == (a, "0", "0")
    assert [entry[0] for entry in body["top"]] == [b]
    await pubsub.aclose()


async def test_adjust_moves_the_player_through_the_stream(board: Board) -> None:
    a, b = _uid(), _uid()
    await _play(board, {a: 30, b: 20})
    adjusted = await _adjust(board, b, 25)
    assert (adjusted.new_score, adjusted.new_rank, adjusted.old_score) == (45, 1, 20)
    assert await _ranking(board) == [(b, 45), (a, 30)]
    entries = await board.client.xrange(board.board_keys.events)
    last = {k.decode(): v.decode() for k, v in entries[-1][1].items()}
    assert (last["action_type"], last["delta"], last["token_hash"]) == ("admin_adjust", "25", "")
    assert uuid.UUID(last["admin_id"]) and last["reason"] == "test"
    down = await _adjust(board, b, -40)
    assert (down.new_score, down.new_rank) == (5, 2)
    await _whole(board)


async def test_adjust_never_goes_below_zero(board: Board) -> None:
    user = _uid()
    await _play(board, {user: 10})
    with pytest.raises(InvalidRequest) as caught:
        await _adjust(board, user, -11)
    assert caught.value.details["current_score"] == 10
    assert await _ranking(board) == [(user, 10)]


async def test_adjust_of_a_new_player_puts_them_on(board: Board) -> None:
    user = _uid()
    adjusted = await _adjust(board, user, 7)
    assert (adjusted.new_score, adjusted.new_rank) == (7, 1)
    await _whole(board)


async def test_remove_takes_the_score_off_and_keeps_nothing_on_the_board(board: Board) -> None:
    a, b = _uid(), _uid()
    await _play(board, {a: 30, b: 20})
    removed = await _adjust(board, a, None)
    assert (removed.new_score, removed.new_rank, removed.old_score) == (0, 0, 30)
    assert await _ranking(board) == [(b, 20)]
    await _whole(board)
    again = await _adjust(board, a, None)
    assert not again.changed
    assert (await board.submit(a, await board.issue(a), 5)).new_score == 5


async def test_a_banned_players_standing_is_changed_off_the_board(board: Board) -> None:
    a, b = _uid(), _uid()
    await _play(board, {a: 30, b: 20})
    await board.scripts.ban_player(board.board_keys, a, TOP_N)
    adjusted = await _adjust(board, a, -10)
    assert (adjusted.new_score, adjusted.new_rank) == (20, 0)
    assert await _ranking(board) == [(b, 20)]
    back = await board.scripts.unban_player(board.board_keys, a, TOP_N)
    assert back.score == 20 and await _ranking(board) == [(b, 20), (a, 20)]


async def test_parallel_bans_and_updates_keep_the_board_whole(board: Board) -> None:
    users = [_uid() for _ in range(20)]
    await _play(board, dict.fromkeys(users, 10))
    tokens = {user: await board.issue(user) for user in users}

    async def race(user: str) -> None:
        await asyncio.gather(
            board.scripts.ban_player(board.board_keys, user, TOP_N),
            board.submit(user, tokens[user], 5),
            return_exceptions=True,
        )

    await asyncio.gather(*(race(user) for user in users))
    assert await _ranking(board) == []
    await _whole(board)
    banned = await board.client.hgetall(board.board_keys.banned)
    scores = {entry.decode().rpartition("|")[2] for entry in banned.values()}
    assert len(banned) == 20 and scores <= {"10", "15"}


async def test_refusals_are_counted_past_the_sample(board: Board) -> None:
    settings = replace(Settings(), audit_flood_window=86_400, audit_flood_sample=2)
    trail = AuditTrail(board.scripts, board.board_keys, settings)
    recorded = [await trail.record("login_failed", ip="198.51.100.4", flood=True) for _ in range(7)]
    assert recorded == [True, True, False, False, False, False, False]
    assert await trail.record("logout", ip="198.51.100.4")  # no subject: always recorded
    # a day later the window is over: one counted record for the other five
    later = time.time() + 86_400
    assert await trail.flush_floods(board.client, now_s=later) == 1
    assert await trail.flush_floods(board.client, now_s=later) == 0
    entries = await board.client.xrange(board.board_keys.events)
    audits = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    counted = [entry for entry in audits if entry["result"] == "counted"]
    assert len(audits) == 4 and len(counted) == 1
    details = json.loads(counted[0]["details"])
    assert (details["count"], details["attempts"], details["aggregated"]) == (5, 7, True)
    assert counted[0]["ip"] == "198.51.100.4" and counted[0]["event_type"] == "login_failed"


async def test_a_signature_is_claimed_once_and_kept_while_it_could_pass(board: Board) -> None:
    keys = board.board_keys
    assert await board.scripts.claim_signature(keys, "d1", 601)
    assert 590 < await board.client.ttl(keys.signature("d1")) <= 601
    assert not await board.scripts.claim_signature(keys, "d1", 601)  # a replay
    assert await board.scripts.claim_signature(keys, "d2", 601)  # another signature
