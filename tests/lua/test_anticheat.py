"""The anti-cheat checks of lua/include/anticheat.lua, through submit_score.lua and
judge_submission.lua, on real Redis and on fakeredis."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from bench.honest_players import false_positives
from scoreboard.core.anticheat import AnticheatPolicy
from scoreboard.core.errors import ScoreValidationFailed
from scoreboard.scoring.updates import fingerprint
from tests.lua.board_helpers import Board

BOT_DATA = '{"level":1,"time_taken":0.01,"accuracy":1.0}'


def _uid() -> str:
    return str(uuid.uuid4())


def _checks(applied_or_details: object) -> list[str]:
    if isinstance(applied_or_details, dict):
        return [reason["check"] for reason in applied_or_details["reasons"]]
    return [reason.check for reason in applied_or_details.reasons]  # type: ignore[attr-defined]


async def test_the_bot_of_the_report_is_flagged_then_rejected(board: Board) -> None:
    """Ten submissions of the maximum, claiming 0.01 s of play each, as fast as it can:
    too many points for the time played flags it, the identical evenly spaced run
    rejects it."""
    user = _uid()
    policy = replace(board.policy, anticheat=AnticheatPolicy())
    verdicts = []
    for _ in range(10):
        try:
            applied = await board.submit(
                user,
                await board.issue(user),
                100,
                claimed_duration_us=10_000,
                claimed_level=1,
                action_data_json=BOT_DATA,
                policy=policy,
            )
            verdicts.append("flagged" if applied.flagged else "approved")
            assert _checks(applied)[0] == "points_per_second"
        except ScoreValidationFailed as refused:
            verdicts.append("rejected")
            assert refused.details["reason"] in ("automation", "points_per_second")
            assert set(_checks(refused.details)) == {"automation", "points_per_second"}
    assert verdicts == ["flagged"] * 4 + ["rejected"] * 6


async def test_points_per_second_of_play_flag_alone(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(rates={"game_completion": 2.0}, min_duration_us=1_000_000)
    calm = await board.submit(user, await board.issue(user), 20, claimed_duration_us=10_000_000)
    assert not calm.flagged
    fast = await board.submit(
        user, await board.issue(user), 60, claimed_duration_us=5_000_000, policy=policy
    )
    assert fast.flagged and _checks(fast) == ["points_per_second"]
    assert fast.risk == pytest.approx(0.7)  # 12 points per second against 2: far past


async def test_a_duration_below_the_floor_counts_as_the_floor(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(rates={"game_completion": 20.0}, min_duration_us=5_000_000)
    applied = await board.submit(
        user, await board.issue(user), 100, claimed_duration_us=1, policy=policy
    )
    assert not applied.flagged  # 100 points over the 5 s floor: exactly 20 per second


async def test_higher_levels_allow_more_points_per_second(board: Board) -> None:
    policy = board.with_anticheat(rates={"game_completion": 10.0}, level_bonus=0.5)
    low, high = _uid(), _uid()
    at_level_1 = await board.submit(
        low,
        await board.issue(low),
        20,
        claimed_duration_us=1_000_000,
        claimed_level=1,
        policy=policy,
    )
    at_level_3 = await board.submit(
        high,
        await board.issue(high),
        20,
        claimed_duration_us=1_000_000,
        claimed_level=3,
        policy=policy,
    )
    assert at_level_1.flagged and not at_level_3.flagged


async def test_a_claimed_level_cannot_buy_an_unbounded_rate(board: Board) -> None:
    policy = board.with_anticheat(rates={"game_completion": 10.0}, level_bonus=0.5)
    user = _uid()
    applied = await board.submit(
        user,
        await board.issue(user),
        100,
        claimed_duration_us=1_000_000,
        claimed_level=1_000_000,
        policy=policy,
    )
    assert applied.flagged  # at most bonus_levels levels count: 10 * 6 = 60 per second


async def test_without_telemetry_the_time_since_the_last_update_is_the_duration(
    board: Board,
) -> None:
    user = _uid()
    policy = board.with_anticheat(rates={"game_completion": 10.0})
    first = await board.submit(user, await board.issue(user), 50, policy=policy)
    assert not first.flagged  # nothing to measure against yet
    second = await board.submit(user, await board.issue(user), 50, policy=policy)
    assert second.flagged and _checks(second) == ["points_per_second"]


async def test_an_increase_far_outside_the_players_own_history(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(min_history=8, z_max=4.0)
    for increase in (10, 12, 9, 11, 10, 13, 8, 10):
        await board.submit(user, await board.issue(user), increase, policy=policy)
    usual = await board.submit(user, await board.issue(user), 14, policy=policy)
    assert not usual.flagged
    outlier = await board.submit(user, await board.issue(user), 90, policy=policy)
    assert outlier.flagged and _checks(outlier) == ["outlier"]


async def test_no_outlier_check_before_enough_history(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(min_history=8)
    for increase in (10, 10, 10, 90):
        applied = await board.submit(user, await board.issue(user), increase, policy=policy)
    assert not applied.flagged


async def test_automation_a_run_of_identical_evenly_spaced_submissions(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(run=4)
    flags = []
    for _ in range(5):
        applied = await board.submit(
            user, await board.issue(user), 30, action_data_json=BOT_DATA, policy=policy
        )
        flags.append(applied.flagged)
    assert flags == [False, False, False, True, True]
    assert _checks(applied) == ["automation"]


async def test_varied_telemetry_is_no_run(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(run=3)
    for n in range(6):
        data = json.dumps({"accuracy": 0.5 + n / 100})
        applied = await board.submit(
            user, await board.issue(user), 30, action_data_json=data, policy=policy
        )
        assert not applied.flagged


async def test_uneven_spacing_breaks_a_run(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(run=3, spacing_us=50_000, spacing_frac=0.1)
    for pause in (0, 0, 0.4, 0):
        await asyncio.sleep(pause)
        applied = await board.submit(
            user, await board.issue(user), 30, action_data_json=BOT_DATA, policy=policy
        )
        assert not applied.flagged, pause


async def test_two_soft_checks_reject_with_every_reason(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(rates={"game_completion": 1.0}, run=2)
    await board.submit(user, await board.issue(user), 10, action_data_json=BOT_DATA)
    token = await board.issue(user)
    with pytest.raises(ScoreValidationFailed) as caught:
        await board.submit(user, token, 10, action_data_json=BOT_DATA, policy=policy)
    details = caught.value.details
    assert details["risk_score"] >= 0.8
    assert set(_checks(details)) == {"points_per_second", "automation"}
    assert details["reason"] == details["reasons"][0]["check"]
    events = await board.client.xrange(board.keys.events())
    rejected = {k.decode(): v.decode() for k, v in events[-1][1].items()}
    assert rejected["type"] == "score_rejected" and rejected["status"] == "ANTICHEAT_REJECTED"
    assert set(part.split(":")[0] for part in rejected["reasons"].split(",")) == {
        "points_per_second",
        "automation",
    }


async def test_flag_mode_accepts_what_enforce_rejects(board: Board) -> None:
    user = _uid()
    policy = replace(
        board.with_anticheat(rates={"game_completion": 1.0}, run=2), anticheat_mode="flag"
    )
    await board.submit(user, await board.issue(user), 10, action_data_json=BOT_DATA)
    applied = await board.submit(
        user, await board.issue(user), 10, action_data_json=BOT_DATA, policy=policy
    )
    assert applied.flagged and applied.risk >= 0.8 and applied.new_score == 20


async def test_parallel_submissions_cannot_both_slip_under_the_window(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(window_points=100)
    tokens = [await board.issue(user) for _ in range(20)]
    results = await asyncio.gather(
        *(board.submit(user, token, 20, policy=policy) for token in tokens),
        return_exceptions=True,
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert len(accepted) == 5 and max(r.new_score for r in accepted) == 100
    assert all(isinstance(r, ScoreValidationFailed) for r in results if r not in accepted)


async def test_the_history_keeps_the_token_wait_and_running_statistics(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat()
    token = await board.issue(user)
    await asyncio.sleep(0.05)
    await board.submit(user, token, 10, policy=policy)
    await board.submit(user, await board.issue(user), 20, policy=policy)
    history = {
        k.decode(): v.decode()
        for k, v in (await board.client.hgetall(board.keys.user(user))).items()
    }
    assert history["n"] == "2" and float(history["mean"]) == 15.0
    assert float(history["m2"]) == 50.0
    events = await board.client.xrange(board.keys.events())
    first = {k.decode(): v.decode() for k, v in events[0][1].items()}
    assert int(first["token_wait_ms"]) >= 50


async def test_honest_players_are_never_flagged(lua_backend: aioredis.Redis) -> None:
    """3,000 simulated honest submissions (40 players x 75 rounds, hours of play each)
    under the default thresholds: the false-positive rate is 0."""
    verdicts = await false_positives(lua_backend, AnticheatPolicy(), players=40, rounds=75)
    assert verdicts["approved"] == 3000, verdicts


async def test_the_judge_catches_a_simulated_bot(board: Board) -> None:
    scripts, policy = board.scripts, AnticheatPolicy()
    now, verdicts = 1_700_000_000_000_000, []
    for _ in range(8):
        now += 2_000_000
        judged = await scripts.judge_submission(
            board.board_keys,
            policy,
            user_id="bot",
            now_us=now,
            increase=100,
            action_type="game_completion",
            claimed_duration_us=None,
            claimed_level=None,
            fingerprint=fingerprint(100, None, None, ""),
            token_wait_us=1000,
        )
        verdicts.append(judged.verdict)
    assert verdicts[0] == "approved" and verdicts[1] == "flagged" and verdicts[-1] == "rejected"
