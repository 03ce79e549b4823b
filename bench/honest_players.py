"""Simulated honest players, judged by the service's own anti-cheat script at simulated
moments, so a day of play takes seconds: the false-positive rate of a set of thresholds.

Each player plays one simulated day: one to six sessions (some of them hours long), a
skill that grows as they play, hot streaks of several good rounds, a level that climbs
(veterans start high), rounds of 25 s to 4 min with human spread in the points, short
pauses and the odd long break, and telemetry with every round. The judge is
`lua/judge_submission.lua`, the same checks `submit_score.lua` runs.

Run as `python -m bench.honest_players [--players 2000]` against the Redis at REDIS_URL
(its own key prefix, removed afterwards). It reports the share of players flagged and
rejected, and the best honest pace over each window (the figures the anti-cheat
defaults are calibrated on).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import random
import statistics
import uuid
from collections import Counter
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from bench import services
from scoreboard.core.anticheat import AnticheatPolicy
from scoreboard.core.settings import Settings
from scoreboard.scoring.updates import fingerprint
from scoreboard.storage.keys import Keys
from scoreboard.storage.scripts import Scripts

ACTION_TYPE = "game_completion"
MAX_INCREASE = 100
DAY_S = 86_400.0
# windows of the pace report, in seconds
WINDOWS = {"minute": 60, "5 minutes": 300, "10 minutes": 600, "hour": 3600, "day": 86_400}


@dataclass
class HonestRound:
    at_s: float  # when it is submitted, seconds into the day
    increase: int
    time_taken: float
    level: int
    data_json: str
    token_wait_s: float


def honest_day(rng: random.Random, max_increase: int = MAX_INCREASE) -> list[HonestRound]:
    """One player's day of play, in the order it is submitted."""
    skill = rng.uniform(0.25, 0.9)
    level = 1 if rng.random() < 0.5 else rng.randint(2, 40)
    sessions = min(6, 1 + int(rng.expovariate(1 / 1.2)))
    starts = sorted(rng.uniform(0, DAY_S - 3 * 3600) for _ in range(sessions))
    played: list[HonestRound] = []
    now, streak = 0.0, 0
    for start in starts:
        now = max(now, start)
        length = rng.uniform(15 * 60, 3 * 3600) if rng.random() < 0.3 else rng.uniform(300, 2400)
        session_end = now + length
        while now < session_end:
            time_taken = round(rng.uniform(25, 240), 2)
            if streak == 0 and rng.random() < 0.08:
                streak = rng.randint(3, 10)
            boost = 1.3 if streak else 1.0
            streak = max(0, streak - 1)
            mean = min(1.0, skill) * max_increase * 0.7 * boost
            increase = int(min(max_increase, max(1, round(rng.gauss(mean, 0.3 * mean)))))
            skill = min(1.0, skill + 0.002)
            if rng.random() < 0.15:
                level += 1
            accuracy = round(rng.uniform(0.35, 0.99), 2)
            now += time_taken + rng.uniform(0.3, 3.0)  # the round, then asking for a token
            data = f'{{"accuracy":{accuracy},"level":{level},"time_taken":{time_taken}}}'
            played.append(
                HonestRound(now, increase, time_taken, level, data, rng.uniform(0.05, 1.5))
            )
            now += rng.expovariate(1 / 20) if rng.random() > 0.05 else rng.uniform(300, 1800)
    return played


def best_pace(rounds: list[HonestRound], window_s: float) -> int:
    """The most points this player submitted within any `window_s` seconds."""
    times = [r.at_s for r in rounds]
    sums = [0]
    for r in rounds:
        sums.append(sums[-1] + r.increase)
    best = 0
    for i, at in enumerate(times):
        j = bisect.bisect_right(times, at + window_s - 1e-9)
        best = max(best, sums[j] - sums[i])
    return best


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@dataclass
class Report:
    players: int = 0
    submissions: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    players_flagged: int = 0
    players_rejected: int = 0
    per_minute_of_day: list[float] = field(default_factory=list)  # points / minutes played
    best: dict[str, list[int]] = field(default_factory=dict)  # window -> each player's best

    def text(self) -> str:
        lines = [
            f"{self.players} honest players, a simulated day each, {self.submissions} submissions",
            f"players flagged at least once: {self.players_flagged}"
            f" ({self.players_flagged / max(1, self.players):.2%});"
            f" players rejected at least once: {self.players_rejected}",
            f"submissions: {dict(sorted(self.verdicts.items()))}",
            "points a minute of play, over each player's day: median"
            f" {statistics.median(self.per_minute_of_day):.1f},"
            f" 99.9th percentile {_quantile(self.per_minute_of_day, 0.999):.1f},"
            f" most {max(self.per_minute_of_day):.1f}",
        ]
        for name, seconds in WINDOWS.items():
            top = max(self.best[name])
            p999 = _quantile([float(v) for v in self.best[name]], 0.999)
            lines.append(
                f"best {name}: most {top} points ({top / (seconds / 60):.1f} a minute),"
                f" 99.9th percentile of players {p999:.0f}"
            )
        return "\n".join(lines)


async def judge_player(
    scripts: Scripts, keys: Keys, policy: AnticheatPolicy, rng: random.Random
) -> tuple[list[HonestRound], Counter[str]]:
    user_id = str(uuid.uuid4())
    board = keys.board()
    day_start_us = 1_700_000_000_000_000 + rng.randrange(10**12)
    rounds = honest_day(rng)
    verdicts: Counter[str] = Counter()
    for played in rounds:
        judged = await scripts.judge_submission(
            board,
            policy,
            user_id=user_id,
            now_us=day_start_us + int(played.at_s * 1e6),
            increase=played.increase,
            action_type=ACTION_TYPE,
            claimed_duration_us=int(played.time_taken * 1e6),
            claimed_level=played.level,
            fingerprint=fingerprint(played.increase, "s", ACTION_TYPE, played.data_json),
            token_wait_us=int(played.token_wait_s * 1e6),
        )
        verdicts[judged.verdict] += 1
        for reason in judged.reasons:
            verdicts[f"reason:{reason.check}"] += 1
    return rounds, verdicts


async def false_positives(
    client: aioredis.Redis,
    policy: AnticheatPolicy,
    *,
    players: int = 60,
    seed: int = 7,
    prefix: str | None = None,
    concurrency: int = 64,
) -> Report:
    """Each of `players` honest players' day judged (keys removed afterwards)."""
    keys = Keys(prefix or f"sbsim{uuid.uuid4().hex[:8]}")
    scripts = Scripts(client)
    rng = random.Random(seed)
    seeds = [rng.randrange(2**32) for _ in range(players)]
    gate = asyncio.Semaphore(concurrency)

    async def one(player_seed: int) -> tuple[list[HonestRound], Counter[str]]:
        async with gate:
            return await judge_player(scripts, keys, policy, random.Random(player_seed))

    try:
        results = await asyncio.gather(*(one(s) for s in seeds))
    finally:
        stale = [key async for key in client.scan_iter(match=keys.pattern(), count=1000)]
        for start in range(0, len(stale), 1000):
            await client.delete(*stale[start : start + 1000])
    report = Report(players=players, best={name: [] for name in WINDOWS})
    for rounds, verdicts in results:
        report.submissions += len(rounds)
        report.verdicts += verdicts
        report.players_flagged += bool(verdicts["flagged"] or verdicts["rejected"])
        report.players_rejected += bool(verdicts["rejected"])
        played_minutes = sum(r.time_taken for r in rounds) / 60
        report.per_minute_of_day.append(sum(r.increase for r in rounds) / max(played_minutes, 1))
        for name, seconds in WINDOWS.items():
            report.best[name].append(best_pace(rounds, seconds))
    return report


def policy_from_env() -> AnticheatPolicy:
    """The anti-cheat thresholds as the environment's SCOREBOARD_ANTICHEAT_* and
    SCOREBOARD_ACTION_TYPES would set them (the defaults for the rest)."""
    chosen = {
        name: value
        for name, value in os.environ.items()
        if name.startswith("SCOREBOARD_ANTICHEAT_") or name == "SCOREBOARD_ACTION_TYPES"
    }
    return AnticheatPolicy.from_settings(Settings.from_env(chosen))


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    policy = policy_from_env()
    client = aioredis.from_url(services.redis_url())
    report = await false_positives(client, policy, players=args.players, seed=args.seed)
    print(report.text())
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(_main())
