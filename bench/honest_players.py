"""Simulated honest players, judged by the service's own anti-cheat script at simulated
moments, so hours of play take seconds: the false-positive rate of a set of thresholds.

A player has a skill, plays rounds of 25 s to 4 min, scores around their skill with
human spread, levels up now and then, pauses between rounds (sometimes for long), and
sends telemetry with every round. Run as `python -m bench.honest_players` against the
Redis at REDIS_URL (its own key prefix, removed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import uuid
from collections import Counter
from dataclasses import dataclass

import redis.asyncio as aioredis

from scoreboard.core.anticheat import AnticheatPolicy
from scoreboard.core.settings import Settings
from scoreboard.scoring.updates import fingerprint
from scoreboard.storage.keys import Keys
from scoreboard.storage.scripts import Scripts

ACTION_TYPE = "game_completion"


@dataclass
class HonestRound:
    increase: int
    time_taken: float
    level: int
    data_json: str
    gap_s: float  # from the previous submission to this one
    token_wait_s: float


def honest_rounds(rng: random.Random, rounds: int, max_increase: int = 100) -> list[HonestRound]:
    skill = rng.uniform(0.25, 0.9)
    level, played = 1, []
    for _ in range(rounds):
        time_taken = round(rng.uniform(25, 240), 2)
        mean = skill * max_increase * 0.7
        increase = int(min(max_increase, max(1, round(rng.gauss(mean, 0.3 * mean)))))
        if rng.random() < 0.15:
            level += 1
        accuracy = round(rng.uniform(0.35, 0.99), 2)
        pause = rng.expovariate(1 / 20) if rng.random() > 0.05 else rng.uniform(600, 3600)
        data = f'{{"accuracy":{accuracy},"level":{level},"time_taken":{time_taken}}}'
        played.append(
            HonestRound(
                increase, time_taken, level, data, time_taken + pause, rng.uniform(0.05, 1.5)
            )
        )
    return played


async def judge_player(
    scripts: Scripts, keys: Keys, policy: AnticheatPolicy, rng: random.Random, rounds: int
) -> Counter[str]:
    user_id = str(uuid.uuid4())
    board = keys.board()
    now_us = 1_700_000_000_000_000 + rng.randrange(10**12)
    verdicts: Counter[str] = Counter()
    for played in honest_rounds(rng, rounds):
        now_us += int(played.gap_s * 1e6)
        judged = await scripts.judge_submission(
            board,
            policy,
            user_id=user_id,
            now_us=now_us,
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
    return verdicts


async def false_positives(
    client: aioredis.Redis,
    policy: AnticheatPolicy,
    *,
    players: int = 60,
    rounds: int = 60,
    seed: int = 7,
    prefix: str | None = None,
) -> Counter[str]:
    """Verdicts over players x rounds honest submissions (keys removed afterwards)."""
    keys = Keys(prefix or f"sbsim{uuid.uuid4().hex[:8]}")
    scripts = Scripts(client)
    rng = random.Random(seed)
    seeds = [rng.randrange(2**32) for _ in range(players)]
    try:
        results = await asyncio.gather(
            *(judge_player(scripts, keys, policy, random.Random(s), rounds) for s in seeds)
        )
    finally:
        stale = [key async for key in client.scan_iter(match=keys.pattern())]
        if stale:
            await client.delete(*stale)
    return sum(results, Counter())


async def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--players", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    settings = Settings.from_env(os.environ)
    policy = AnticheatPolicy.from_settings(settings)
    client = aioredis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0")
    verdicts = await false_positives(
        client, policy, players=args.players, rounds=args.rounds, seed=args.seed
    )
    total = args.players * args.rounds
    flagged = verdicts["flagged"] + verdicts["rejected"]
    print(f"{total} honest submissions: {flagged} flagged or rejected ({flagged / total:.4%})")
    for name, count in sorted(verdicts.items()):
        print(f"  {name}: {count}")
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(_main())
