"""Cheating bots against the service's own anti-cheat judge, at simulated moments: how
many points a minute each one gains before it is first flagged.

Every bot holds a real client's constraints: the score-update rate limit (10 a minute,
in a burst of at most 10), at most the action token's maximum (100) per update. They
are judged by `lua/judge_submission.lua`, the checks `submit_score.lua` runs:

- `naive`: the maximum every 6 s, the same request each time, no telemetry.
- `adaptive`: 88-100 points at irregular gaps of 3.8-7.6 s, each claiming the gap plus
  3 s of play at a level just high enough for its points per second.
- `burst`: ten updates of 100 back to back (17 ms) every minute, claiming level 11 and
  5 s of play each.
- `pacer`: has read the thresholds: sends the most it can without crossing any pace
  window's flag or the points per second of its claims, every 6 s.
- `farm`: five `pacer` accounts played side by side by one operator.

A bot passes the target when it is flagged within its first five minutes, or gains
less than twice the best honest five-minute pace (from `bench.honest_players`, run
here first) over any five minutes while unflagged. Run as
`python -m bench.bots [--minutes 60]` against the Redis at REDIS_URL (its own key
prefix, removed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from bench import services
from bench.honest_players import ACTION_TYPE, MAX_INCREASE, false_positives, policy_from_env
from scoreboard.core.anticheat import AnticheatPolicy
from scoreboard.scoring.updates import fingerprint
from scoreboard.storage.keys import Keys
from scoreboard.storage.scripts import Scripts

RATE_LIMIT, RATE_PERIOD_S = 10, 60.0


@dataclass
class Move:
    """One update a bot sends: `wait_s` after its previous one."""

    wait_s: float
    increase: int
    time_taken: float | None
    level: int | None
    data_json: str


@dataclass
class Outcome:
    name: str
    minutes: float
    accepted: int = 0
    rejected: int = 0
    flagged_at_s: float | None = None
    points_before_flag: int = 0
    points: int = 0
    reasons: set[str] = field(default_factory=set)
    unflagged: list[tuple[float, int]] = field(default_factory=list)  # (when, points)

    @property
    def undetected_per_minute(self) -> float:
        """Points a minute gained while never flagged: before the first flag, or over
        the whole run when never flagged."""
        until = self.flagged_at_s if self.flagged_at_s is not None else self.minutes * 60
        return self.points_before_flag / max(until / 60, 1 / 60)

    @property
    def best_5_minutes_unflagged(self) -> float:
        """The most points a minute over any five minutes before the first flag."""
        best = 0
        for i, (start, _) in enumerate(self.unflagged):
            within = sum(p for at, p in self.unflagged[i:] if at < start + 300)
            best = max(best, within)
        return best / 5

    def passes(self, honest_best_5_minutes: float) -> bool:
        caught_early = self.flagged_at_s is not None and self.flagged_at_s <= 300
        return caught_early or self.best_5_minutes_unflagged < 2 * honest_best_5_minutes


class RateLimit:
    """The score-update rule as the service applies it (GCRA, a burst of the limit)."""

    def __init__(self) -> None:
        self.tat = 0.0
        self.emission = RATE_PERIOD_S / RATE_LIMIT

    def earliest(self, now: float) -> float:
        return max(now, max(self.tat, now) + self.emission - RATE_PERIOD_S)

    def take(self, now: float) -> None:
        self.tat = max(self.tat, now) + self.emission


def _level_for(policy: AnticheatPolicy, increase: int, seconds: float) -> int:
    """The lowest level whose allowance covers `increase` over `seconds` of play."""
    rate = policy.rates.get(ACTION_TYPE, 1.0)
    needed = increase / max(seconds, policy.min_duration_us / 1e6) / rate
    if needed <= 1 or policy.level_bonus <= 0:
        return 1
    return 1 + min(policy.bonus_levels, math.ceil((needed - 1) / policy.level_bonus))


def _telemetry(rng: random.Random, level: int | None, time_taken: float | None) -> str:
    parts = [f'"accuracy":{rng.uniform(0.6, 0.99):.2f}']
    if level is not None:
        parts.append(f'"level":{level}')
    if time_taken is not None:
        parts.append(f'"time_taken":{time_taken}')
    return "{" + ",".join(parts) + "}"


def naive(policy: AnticheatPolicy, rng: random.Random) -> Iterator[Move]:
    while True:
        yield Move(6.0, MAX_INCREASE, None, None, "")


def adaptive(policy: AnticheatPolicy, rng: random.Random) -> Iterator[Move]:
    while True:
        gap = rng.uniform(3.8, 7.6)
        increase = rng.randint(88, MAX_INCREASE)
        taken = round(gap + 3, 2)
        level = _level_for(policy, increase, taken)
        yield Move(gap, increase, taken, level, _telemetry(rng, level, taken))


def burst(policy: AnticheatPolicy, rng: random.Random) -> Iterator[Move]:
    while True:
        for n in range(10):
            wait = 60 - 9 * 0.0017 if n == 0 else 0.0017
            yield Move(wait, MAX_INCREASE, 5.0, 11, _telemetry(rng, 11, 5.0))


class Pacer:
    """Keeps, as it believes the judge does, the points it sent in each pace window,
    and sends the most that stays under every window's flag and, at the highest level
    that counts, under the points per second of the play it claims."""

    def __init__(self, policy: AnticheatPolicy) -> None:
        self.policy = policy
        self.sent: list[tuple[float, int]] = []
        self.now = 0.0

    def moves(self, rng: random.Random) -> Iterator[Move]:
        while True:
            gap = 6.0 + rng.uniform(0, 0.5)
            self.now += gap
            taken = round(gap - 0.5, 2)
            policy = self.policy
            most_per_second = policy.rates.get(ACTION_TYPE, 1.0) * (
                1 + policy.level_bonus * policy.bonus_levels
            )
            room = min(MAX_INCREASE, int(most_per_second * taken))
            for window in self.policy.windows:
                since = self.now - window.us / 1e6
                total = sum(points for at, points in self.sent if at > since)
                room = min(room, int(window.flag * 0.97) - total)
            if room < 5:
                yield Move(gap, 0, None, None, "")  # a pause: nothing sent
                continue
            increase = rng.randint(max(1, room - 4), room)
            level = _level_for(self.policy, increase, taken)
            self.sent.append((self.now, increase))
            yield Move(gap, increase, taken, level, _telemetry(rng, level, taken))


def pacer(policy: AnticheatPolicy, rng: random.Random) -> Iterator[Move]:
    return Pacer(policy).moves(rng)


BOTS: dict[str, Callable[[AnticheatPolicy, random.Random], Iterator[Move]]] = {
    "naive": naive,
    "adaptive": adaptive,
    "burst": burst,
    "pacer": pacer,
}
FARM_ACCOUNTS = 5


async def play(
    scripts: Scripts,
    keys: Keys,
    policy: AnticheatPolicy,
    name: str,
    moves: Iterator[Move],
    minutes: float,
) -> Outcome:
    user_id = str(uuid.uuid4())
    board = keys.board()
    start_us = 1_700_000_000_000_000
    outcome = Outcome(name, minutes)
    limit, now = RateLimit(), 0.0
    for move in moves:
        now = limit.earliest(now + move.wait_s)
        if now > minutes * 60:
            break
        if move.increase == 0:
            continue
        limit.take(now)
        judged = await scripts.judge_submission(
            board,
            policy,
            user_id=user_id,
            now_us=start_us + int(now * 1e6),
            increase=move.increase,
            action_type=ACTION_TYPE,
            claimed_duration_us=None if move.time_taken is None else int(move.time_taken * 1e6),
            claimed_level=move.level,
            fingerprint=fingerprint(move.increase, "s", ACTION_TYPE, move.data_json),
            token_wait_us=50_000,
        )
        outcome.reasons.update(reason.check for reason in judged.reasons)
        if judged.verdict != "approved" and outcome.flagged_at_s is None:
            outcome.flagged_at_s = now
        if judged.verdict == "rejected":
            outcome.rejected += 1
            continue
        outcome.accepted += 1
        outcome.points += move.increase
        if outcome.flagged_at_s is None:
            outcome.points_before_flag += move.increase
            outcome.unflagged.append((now, move.increase))
    return outcome


async def run_bots(
    client: aioredis.Redis, policy: AnticheatPolicy, *, minutes: float = 60, seed: int = 3
) -> list[Outcome]:
    keys = Keys(f"sbbot{uuid.uuid4().hex[:8]}")
    scripts = Scripts(client)
    rng = random.Random(seed)
    try:
        outcomes = [
            await play(scripts, keys, policy, name, bot(policy, rng), minutes)
            for name, bot in BOTS.items()
        ]
        farm = await asyncio.gather(
            *(
                play(scripts, keys, policy, f"farm account {n + 1}", pacer(policy, rng), minutes)
                for n in range(FARM_ACCOUNTS)
            )
        )
    finally:
        stale = [key async for key in client.scan_iter(match=keys.pattern(), count=1000)]
        if stale:
            await client.delete(*stale)
    return [*outcomes, *farm]


def table(outcomes: list[Outcome], honest_best_5_minutes: float) -> str:
    lines = [
        "| bot | accepted | rejected | first flagged | points | undetected points a minute"
        " | best five unflagged minutes, a minute | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        flagged = "never" if o.flagged_at_s is None else f"{o.flagged_at_s / 60:.1f} min"
        verdict = "met" if o.passes(honest_best_5_minutes) else "**missed**"
        lines.append(
            f"| {o.name} | {o.accepted} | {o.rejected} | {flagged} | {o.points}"
            f" | {o.undetected_per_minute:.1f} | {o.best_5_minutes_unflagged:.1f} | {verdict} |"
        )
    farm = [o for o in outcomes if o.name.startswith("farm")]
    if farm:
        total = sum(o.undetected_per_minute for o in farm)
        lines.append(f"\nThe farm's {len(farm)} accounts together: {total:.1f} points a minute.")
    return "\n".join(lines)


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--honest-players", type=int, default=2000)
    args = parser.parse_args()
    policy = policy_from_env()
    client = aioredis.from_url(services.redis_url())
    honest = await false_positives(client, policy, players=args.honest_players)
    best = max(honest.best["5 minutes"]) / 5
    print(f"honest reference ({honest.players} players): best five-minute pace {best:.1f} a minute")
    print(f"target: flagged within 5 minutes, or under {2 * best:.1f} a minute unflagged\n")
    print(table(await run_bots(client, policy, minutes=args.minutes), best))
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(_main())
