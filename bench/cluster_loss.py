"""What a `kill -9` of the board's master loses on a Redis Cluster, with
`SCOREBOARD_REDIS_WAIT_REPLICAS` off and at 1, in one run.

    .venv/bin/python -m bench.cluster_loss [--seconds 6] [--players 16]

For each setting, on a new 3-master / 3-replica cluster of its own
(`cluster-node-timeout 1000`): one server and one syncer (bench.run's deployment),
`--players` players submitting one point at a time in a closed loop (a token, then
the update) for `--seconds`, the master of the board's slot killed with SIGKILL, and
the players going on for `--seconds` more. Every update answered 200 is acknowledged;
once a replica has taken over, each player's score on the board is read. Lost: the
acknowledged points the board does not have (Redis replicates asynchronously: what
the master acknowledged and had not sent on dies with it). Applied unacknowledged:
points on the board whose answer was not a 200 (a 503 after WAIT timed out is such:
applied, only not confirmed). Also the acknowledged updates' latency p50/p99 before
the kill and over the whole phase, and how long updates were refused around it.
Writes bench/CLUSTER_LOSS.md and bench/cluster_loss.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import services
from bench.run import HERE, Deployment, seed_players
from scoreboard.storage.keys import Keys
from tests import redis_cluster as lab

SETTINGS = {"off": {}, "WAIT 1": {"SCOREBOARD_REDIS_WAIT_REPLICAS": "1"}}


@dataclass
class Player:
    access: str
    user_id: str
    acknowledged: int = 0
    # (at, seconds, status): an update's answer (0: none), or a token refused (-status)
    answers: list[tuple[float, float, int]] = field(default_factory=list)


async def _play(http: httpx.AsyncClient, player: Player, until: float) -> None:
    headers = {"Authorization": f"Bearer {player.access}"}
    while time.monotonic() < until:
        started = time.monotonic()
        status = 0
        try:
            issued = await http.post(
                "/v1/auth/action-token",
                json={"action_type": "game_completion", "session_id": "s1"},
                headers=headers,
            )
            status = issued.status_code
            if status != 200:  # no token: the player cannot play either
                player.answers.append((started, 0.0, -status))
            else:
                token = issued.json()["data"]["action_token"]
                sent = time.monotonic()
                answer = await http.post(
                    "/v1/scores/update",
                    json={"score_increase": 1},
                    headers={**headers, "X-Action-Token": token},
                )
                status = answer.status_code
                player.answers.append((sent, time.monotonic() - sent, status))
                if status == 200:
                    player.acknowledged += 1
        except httpx.HTTPError:
            player.answers.append((started, time.monotonic() - started, 0))
        if status != 200:
            await asyncio.sleep(0.05)


async def _scores(http: httpx.AsyncClient, players: list[Player]) -> list[int]:
    """Each player's score on the board (`GET /scores/user/{id}`), once it answers."""
    scores = []
    deadline = time.monotonic() + 60
    for player in players:
        while True:
            answer = await http.get(f"/v1/scores/user/{player.user_id}")
            if answer.status_code == 200:
                scores.append(int(answer.json()["data"]["current_score"]))
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the board did not answer: {answer.text}")
            await asyncio.sleep(0.5)
    return scores


def _longest_wait(acked: list[tuple[float, float, int]], killed_at: float, end: float) -> float:
    """The longest time from the kill to the phase's end in which no update was
    acknowledged."""
    done = sorted(at + seconds for at, seconds, _ in acked if killed_at <= at + seconds <= end)
    return max(b - a for a, b in itertools.pairwise([killed_at, *done, end]))


def _ms(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def one_setting(
    name: str, admin_dsn: str, seconds: float, count: int, workdir: Path
) -> dict[str, Any]:
    cluster = lab.start(workdir / "nodes")
    deployment = Deployment(
        cluster.url,
        admin_dsn,
        1,
        workdir,
        {"SCOREBOARD_REDIS_CLUSTER": "true", "SCOREBOARD_ANTICHEAT_MODE": "off", **SETTINGS[name]},
    )
    try:
        await deployment.start()
        seeded = await seed_players(deployment.url, count, workdir / "players.jsonl")
        players = [Player(p["access"], p["user_id"]) for p in seeded]
        board = Keys(deployment.prefix).board().leaderboard
        async with httpx.AsyncClient(base_url=deployment.url, timeout=10) as http:
            started = time.monotonic()
            end = started + 2 * seconds
            load = [asyncio.create_task(_play(http, p, end)) for p in players]
            await asyncio.sleep(seconds)
            master, _ = await asyncio.to_thread(lab.owner, cluster, board)
            killed_at = time.monotonic()
            lab.kill(cluster, master)
            await asyncio.gather(*load)
            ended_at = time.monotonic()
            on_board = await _scores(http, players)
    finally:
        await deployment.stop()
        lab.stop(cluster)
    answers = [a for p in players for a in p.answers]
    acked = [a for a in answers if a[2] == 200]
    updates = [a for a in answers if a[2] >= 0]  # (a refused token is its status, negated)
    refused = [at for at, _, status in answers if status != 200 and at >= killed_at]
    lost = sum(max(0, p.acknowledged - score) for p, score in zip(players, on_board, strict=True))
    extra = sum(max(0, score - p.acknowledged) for p, score in zip(players, on_board, strict=True))
    before = [s for at, s, _ in acked if at < killed_at]
    return {
        "setting": name,
        "acknowledged": sum(p.acknowledged for p in players),
        "lost": lost,
        "applied_unacknowledged": extra,
        "refused": len(answers) - len(acked),
        "updates_refused": len(updates) - len(acked),
        "refused_for_s": (max(refused) - killed_at) if refused else 0.0,
        "unanswered_s": _longest_wait(acked, killed_at, ended_at),
        "max_ms": max((seconds for _, seconds, _ in acked), default=0.0) * 1000,
        "p50_ms_before": _ms(before, 0.5),
        "p99_ms_before": _ms(before, 0.99),
        "p50_ms": _ms([s for _, s, _ in acked], 0.5),
        "p99_ms": _ms([s for _, s, _ in acked], 0.99),
        "statuses": sorted({a[2] for a in answers}),
    }


def write_report(args: argparse.Namespace, results: list[dict[str, Any]], out: Path) -> str:
    lines = [
        "# Loss under `kill -9` of the board's master",
        "",
        f"`python -m bench.cluster_loss --seconds {args.seconds:g} --players {args.players}`,"
        " one run: each setting on a new 3-master / 3-replica cluster on this machine's"
        " loopback, one server and one syncer, players submitting one point per update in"
        f" a closed loop for {args.seconds:g} s, the board's master killed, {args.seconds:g} s"
        " more. Latency is of the acknowledged updates (the update request alone).",
        "",
        "| WAIT | acknowledged | lost | applied, not acknowledged | refused (tokens and"
        " updates) | longest time with none acknowledged (s, from the kill to the end) |"
        " p50 / p99 ms before the kill | p50 / p99 / max ms whole phase |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['setting']} | {r['acknowledged']:,} | {r['lost']:,} |"
            f" {r['applied_unacknowledged']:,} | {r['refused']:,} | {r['unanswered_s']:.2f} |"
            f" {r['p50_ms_before']:.2f} / {r['p99_ms_before']:.2f} |"
            f" {r['p50_ms']:.2f} / {r['p99_ms']:.2f} / {r['max_ms']:,.0f} |"
        )
    lines += [
        "",
        "Lost points are acknowledged updates the new master never received. With WAIT 1 an"
        " update is answered 200 only after a replica confirmed it; one no replica"
        " confirmed in time is answered 503 (applied, not confirmed: the fourth column),"
        " so nothing acknowledged can be lost with its master alone. While no replica has"
        " taken over, an update either waits (the server retries on the new slot map) or"
        " is refused with 503: the longest stretch without an acknowledgement, and the"
        " slowest acknowledged update, show the stall. With WAIT 1 and one replica per"
        " master (as here), the replica that takes over has no replica of its own until"
        " the killed node comes back as one: until then every update is applied and"
        " answered 503, never 200. Give each master two replicas where WAIT 1 is on.",
        "",
    ]
    report = "\n".join(lines)
    (out / "CLUSTER_LOSS.md").write_text(report)
    (out / "cluster_loss.json").write_text(json.dumps(results, indent=2) + "\n")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--players", type=int, default=16)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    admin_dsn = services.admin_dsn()
    results = []
    for name in SETTINGS:
        with tempfile.TemporaryDirectory(prefix="sbbench-loss-") as tmp:
            results.append(
                asyncio.run(one_setting(name, admin_dsn, args.seconds, args.players, Path(tmp)))
            )
    print(write_report(args, results, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
