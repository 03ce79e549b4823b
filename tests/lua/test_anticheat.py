"""The anti-cheat checks of lua/include/anticheat.lua, through submit_score.lua and
judge_submission.lua, on real Redis and on fakeredis."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from bench.bots import run_bots
from bench.honest_players import false_positives
from scoreboard.core.anticheat import AnticheatPolicy, DevicePolicy, PaceWindow, PopulationPolicy
from scoreboard.core.errors import RateLimitExceeded, ScoreValidationFailed
from scoreboard.scoring.updates import fingerprint
from tests.lua.board_helpers import Board, pace, read_history

BOT_DATA = '{"level":1,"time_taken":0.01,"accuracy":1.0}'


def _uid() -> str:
    return str(uuid.uuid4())


def _checks(applied_or_details: object) -> list[str]:
    if isinstance(applied_or_details, dict):
        return [reason["check"] for reason in applied_or_details["reasons"]]
    return [reason.check for reason in applied_or_details.reasons]  # type: ignore[attr-defined]


async def test_the_bot_of_the_report_is_flagged_then_rejected(board: Board) -> None:
    """Ten submissions of the maximum, claiming 0.01 s of play each, as fast as it can:
    too many points for the time played flags it; past the minute's pace (and then the
    identical evenly spaced run) it is rejected."""
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
            checks = set(_checks(refused.details))
            assert {"points_per_second", "points_per_minute"} <= checks
            assert checks <= {"points_per_second", "points_per_minute", "automation"}
    assert verdicts == ["flagged"] * 2 + ["rejected"] * 8


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
    policy = board.with_anticheat(windows=pace(100))
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
    history = await read_history(board.client, board.keys.user(user))
    assert history["n"] == "2" and float(history["mean"]) == 15.0
    assert float(history["m2"]) == 50.0
    events = await board.client.xrange(board.keys.events())
    first = {k.decode(): v.decode() for k, v in events[0][1].items()}
    assert int(first["token_wait_ms"]) >= 50


async def test_the_history_is_one_field_and_an_older_layout_starts_afresh(board: Board) -> None:
    user = _uid()
    key = board.keys.user(user)
    await board.client.hset(key, mapping={"n": "40", "mean": "1", "pace:points_per_minute": "1:1"})
    await board.submit(user, await board.issue(user), 10, policy=board.with_anticheat())
    assert await board.client.hkeys(key) == [b"h"]
    history = await read_history(board.client, key)
    assert history["n"] == "1" and float(history["mean"]) == 10.0


async def test_honest_players_are_never_flagged(lua_backend: aioredis.Redis) -> None:
    """40 simulated honest players' days (sessions, streaks, growing skill; about a
    thousand submissions) under the default thresholds: none flagged."""
    report = await false_positives(lua_backend, AnticheatPolicy(), players=40)
    assert report.submissions > 500
    assert report.players_flagged == 0 and report.verdicts["rejected"] == 0, report.verdicts


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


def _varied(n: int) -> str:
    return json.dumps({"accuracy": round(0.5 + n / 1000, 3)})


async def test_claimed_play_cannot_run_ahead_of_the_clock(board: Board) -> None:
    """The burst of the report: ten updates sent back to back, each claiming 5 s of
    play. Claims add up on the player's play clock, which may run at most the slack
    (here 5 s) ahead of the wall clock: the first two fit, the rest are impossible."""
    user = _uid()
    policy = board.with_anticheat(slack_us=5_000_000)
    outcomes = []
    for n in range(10):
        try:
            await board.submit(
                user,
                await board.issue(user),
                100,
                claimed_duration_us=5_000_000,
                claimed_level=11,
                action_data_json=_varied(n),
                policy=policy,
            )
            outcomes.append("accepted")
        except ScoreValidationFailed as refused:
            assert refused.details["reason"] == "impossible_duration"
            outcomes.append("rejected")
    assert outcomes == ["accepted"] * 2 + ["rejected"] * 8


async def _judge(
    board: Board,
    policy: AnticheatPolicy,
    at_s: float,
    increase: int,
    *,
    user: str = "player",
    taken_s: float | None = None,
    level: int | None = None,
    token_wait_s: float = 0.1,
) -> tuple[str, list[str]]:
    judged = await board.scripts.judge_submission(
        board.board_keys,
        policy,
        user_id=user,
        now_us=1_700_000_000_000_000 + int(at_s * 1e6),
        increase=increase,
        action_type="game_completion",
        claimed_duration_us=None if taken_s is None else int(taken_s * 1e6),
        claimed_level=level,
        fingerprint=fingerprint(increase, "s", "game_completion", f"{at_s}"),
        token_wait_us=int(token_wait_s * 1e6),
    )
    return judged.verdict, [reason.check for reason in judged.reasons]


async def test_the_play_clock_catches_up_with_time_and_forgets_rejected_claims(
    board: Board,
) -> None:
    policy = AnticheatPolicy(windows=(), rates={}, slack_us=2_000_000)
    assert (await _judge(board, policy, 0, 10, taken_s=30))[0] == "approved"
    # 30 s claimed 10 s later: it overlaps the first claim's end by 20 s
    assert await _judge(board, policy, 10, 10, taken_s=30) == (
        "rejected",
        ["impossible_duration"],
    )
    # the rejected claim took nothing from the clock: 40 s after the first, 38 s fit
    assert (await _judge(board, policy, 40, 10, taken_s=38))[0] == "approved"
    # and claims within the slack carry over: 2 s ahead now, no more room
    assert (await _judge(board, policy, 50, 10, taken_s=12))[0] == "approved"
    assert (await _judge(board, policy, 60, 10, taken_s=10.5))[0] == "rejected"


async def test_a_claim_may_need_to_fit_in_its_tokens_age(board: Board) -> None:
    """`token`: the game asks for the token as the action starts, so the play claimed
    cannot be longer than the time since the token was issued (plus the slack)."""
    user = _uid()
    policy = board.with_anticheat(slack_us=500_000, time_taken={"game_completion": "token"})
    token = await board.issue(user)
    await asyncio.sleep(0.3)
    applied = await board.submit(user, token, 10, claimed_duration_us=700_000, policy=policy)
    assert not applied.flagged
    token = await board.issue(user)
    with pytest.raises(ScoreValidationFailed) as caught:
        await board.submit(user, token, 10, claimed_duration_us=3_000_000, policy=policy)
    assert caught.value.details["reason"] == "impossible_duration"


async def test_a_required_claim_of_play_may_not_be_left_out(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(time_taken={"game_completion": "required"})
    with pytest.raises(ScoreValidationFailed) as caught:
        await board.submit(user, await board.issue(user), 10, policy=policy)
    assert caught.value.details["reason"] == "missing_duration"
    applied = await board.submit(
        user, await board.issue(user), 10, claimed_duration_us=1_000_000, policy=policy
    )
    assert applied.new_score == 10


async def test_a_level_outside_the_games_range_is_impossible(board: Board) -> None:
    user = _uid()
    policy = board.with_anticheat(levels={"game_completion": (1, 50)})
    with pytest.raises(ScoreValidationFailed) as caught:
        await board.submit(user, await board.issue(user), 10, claimed_level=51, policy=policy)
    assert caught.value.details["reason"] == "impossible_level"
    applied = await board.submit(user, await board.issue(user), 10, claimed_level=50, policy=policy)
    assert not applied.flagged


async def test_each_pace_window_flags_then_rejects(board: Board) -> None:
    policy = AnticheatPolicy(
        windows=(
            PaceWindow("points_per_minute", 60_000_000, 150, 800),
            PaceWindow("points_per_hour", 3_600_000_000, 300, 1000),
        ),
        rates={},
    )
    verdicts = [await _judge(board, policy, 10 * n, 100) for n in range(2)]
    assert verdicts == [("approved", []), ("flagged", ["points_per_minute"])]
    # two minutes on: the minute's window has forgotten, the hour's has not
    assert await _judge(board, policy, 130, 100) == ("approved", [])
    assert await _judge(board, policy, 200, 100) == ("flagged", ["points_per_hour"])
    # past the hour's rejection (and its flag with the minute's: two soft checks)
    assert (await _judge(board, policy, 210, 100))[0] == "rejected"
    # past the hour's rejection alone (risk 1), with the minute's flag
    assert await _judge(board, policy, 400, 700) == (
        "rejected",
        ["points_per_hour", "points_per_minute"],
    )


async def test_a_player_holds_a_bounded_number_of_unspent_tokens(board: Board) -> None:
    user = _uid()
    tokens = [await board.issue(user, max_open=3) for _ in range(3)]
    with pytest.raises(RateLimitExceeded) as caught:
        await board.issue(user, max_open=3)
    assert caught.value.details["reason"] == "open_action_tokens"
    assert 1 <= int(caught.value.headers["Retry-After"]) <= 300
    await board.submit(user, tokens[0], 10)
    await board.issue(user, max_open=3)  # spending one made room
    other = _uid()
    await board.issue(other, max_open=3)  # a bound per player


async def test_unspent_tokens_free_their_place_as_they_expire(board: Board) -> None:
    user = _uid()
    await board.issue(user, max_open=1, ttl_ms=200)
    with pytest.raises(RateLimitExceeded):
        await board.issue(user, max_open=1)
    await asyncio.sleep(0.3)
    await board.issue(user, max_open=1)


async def test_the_bots_of_the_report_are_caught_or_held_down(
    lua_backend: aioredis.Redis,
) -> None:
    """bench/bots.py for ten simulated minutes under the default thresholds: each bot is
    flagged within five minutes or gains, over any five unflagged minutes, less than
    twice the best honest five-minute pace (90.4 points a minute over 2,000 simulated
    honest days, bench/honest_players.py)."""
    outcomes = await run_bots(lua_backend, AnticheatPolicy(), minutes=10)
    assert {o.name for o in outcomes} >= {"naive", "adaptive", "burst", "pacer"}
    for outcome in outcomes:
        assert outcome.passes(90.4), outcome


def _population_only(**changes: object) -> AnticheatPolicy:
    population = replace(PopulationPolicy(), **changes)  # type: ignore[arg-type]
    return AnticheatPolicy(windows=(), rates={}, min_history=10**9, population=population)


async def _play_rounds(
    board: Board,
    policy: AnticheatPolicy,
    user: str,
    rounds: int,
    increase: int,
    taken_s: float,
    start_s: float = 0,
) -> list[tuple[str, list[str]]]:
    """`rounds` rounds one after another from `start_s`, each claiming `taken_s` of play."""
    gap = taken_s + 5
    return [
        await _judge(board, policy, start_s + (n + 1) * gap, increase, user=user, taken_s=taken_s)
        for n in range(rounds)
    ]


async def test_a_fresh_board_flags_a_pace_above_the_configured_default(board: Board) -> None:
    """Ten rounds of 60 points in 20 s (180 a minute of play) against a default of 120:
    flagged once the player has ten updates and five minutes of play, not before."""
    policy = _population_only(default=120.0, min_play_us=150_000_000)
    verdicts = await _play_rounds(board, policy, "fast", 10, 60, 20.0)
    assert [v for v, _ in verdicts[:7]] == ["approved"] * 7  # under 150 s of play
    assert verdicts[-1] == ("flagged", ["population"])


async def test_a_board_learns_its_players_pace_and_flags_its_far_tail(board: Board) -> None:
    policy = _population_only(min_players=30, min_play_us=60_000_000, min_updates=3)
    for n in range(40):  # 40 players at about 30 points a minute of play
        await _play_rounds(board, policy, f"player-{n}", 4, 15 + n % 3, 30.0)
    sketch = {
        k.decode(): v.decode()
        for k, v in (await board.client.hgetall(board.keys.population())).items()
    }
    assert sketch["players"] == "40"
    limit = float(sketch["limit"])
    assert 40 < limit < 120  # twice the top bucket's edge, far below the default 180
    # 100 points a minute of play: under the default, far above this board's players
    verdicts = await _play_rounds(board, policy, "farmer", 4, 50, 30.0)
    assert verdicts[-1] == ("flagged", ["population"])


async def test_a_player_is_counted_once_as_their_pace_moves(board: Board) -> None:
    policy = _population_only(min_players=10**9, min_play_us=0, min_updates=1)
    slow = await _play_rounds(board, policy, "mover", 3, 10, 30.0)  # 20 a minute of play
    fast = await _play_rounds(board, policy, "mover", 3, 100, 30.0, start_s=200)  # then faster
    assert {verdict for verdict, _ in slow + fast} == {"approved"}
    history = await read_history(board.client, board.keys.user("mover"))
    assert history["pop"] != "b13"  # moved on from the bucket of 20 a minute
    sketch = await board.client.hgetall(board.keys.population())
    counts = {k: int(v) for k, v in sketch.items() if k.startswith(b"b")}
    assert sketch[b"players"] == b"1" and sum(counts.values()) == 1


async def test_a_farm_of_accounts_on_one_device_is_judged_device_farm(board: Board) -> None:
    """Twenty accounts playing from one device: from the tenth on, each update is
    flagged `device_farm` (accepted, for review); the same accounts on devices of their
    own are not."""
    policy = replace(board.policy, anticheat=AnticheatPolicy())
    farm = "f" * 32
    reasons = []
    for _ in range(20):
        user = _uid()
        applied = await board.submit(
            user, await board.issue(user, device=farm), 10, policy=policy, device=farm
        )
        reasons.append(_checks(applied))
    assert all("device_farm" not in checks for checks in reasons[:9])
    assert all(checks == ["device_farm"] for checks in reasons[9:]), reasons
    counted = await board.client.zcard(board.keys.device_players(farm, board.board))
    assert counted == 20
    own = _uid()
    applied = await board.submit(
        own, await board.issue(own, device="1" * 32), 10, policy=policy, device="1" * 32
    )
    assert _checks(applied) == []


async def test_one_account_hopping_across_devices_is_judged_device_hopping(board: Board) -> None:
    policy = replace(
        board.policy,
        anticheat=replace(
            AnticheatPolicy(), devices=DevicePolicy(players=10, devices=3, window_us=3_600_000_000)
        ),
    )
    user = _uid()
    checks = []
    for index in range(4):
        device = f"{index:032x}"
        applied = await board.submit(
            user, await board.issue(user, device=device), 1, policy=policy, device=device
        )
        checks.append(_checks(applied))
    assert checks[:2] == [[], []]
    assert "device_hopping" in checks[2] and "device_hopping" in checks[3]
    ttl = await board.client.pttl(board.keys.player_devices(user, board.board))
    assert 0 < ttl <= 3_600_000
