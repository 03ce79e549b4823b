"""Cost against the board's size: the same board at a thousand players and at a million,
in one run.

    .venv/bin/python -m bench.scale [--players 1000000] [--seconds 8] [--runs 3] [--out bench]

The deployment of `bench.run` (its own key prefix and database). A few hundred players
register and log in through the API; the rest of the board is bulk-loaded into
PostgreSQL (COPY of `users` and `board_scores` rows, the fastest honest route: the
rows a syncer would have written) and `scoreboard rebuild` stages the board in Redis
from them, as after the loss of Redis. At each size: the rebuild's wall time, Redis's
memory per player (the ranking's sorted set and its players hash, `MEMORY USAGE`), and
closed-loop latency (a few connections, each sending its next request on the answer
to its last) of a score update, the top 10, a player's score and around a player,
with the syncer's CPU per persisted update, and the share of each phase during which the
syncer's periodic compare was running. With `--runs`, each figure is the median of that
many runs, each on a fresh deployment, and each run's p99 ratios are listed with those
shares. Writes bench/SCALE.md and bench/scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from bench import services
from bench.cpu_use import CpuMeter
from bench.run import Deployment, loadgen, seed_players, wait_drained
from bench.sync_drain import with_database
from scoreboard.storage.keys import Keys

HERE = Path(__file__).resolve().parent
ACTIVE = 200  # players who log in and play; the rest only sit on the board
CONCURRENCY = 4  # closed loop: latency of the service, not of a queue in front of it
SMALL = 1000
COMPARE_LOOK_SECONDS = 0.2  # how often a phase looks whether the syncer is comparing
MAX_SCORE = 10_000_000


async def fill(dsn: str, active: list[dict[str, str]], total: int, first_seq: int) -> int:
    """Board rows up to `total` players: the active players' totals, then made-up
    players (accounts that cannot log in) with theirs. Returns the next sequence."""
    conn = await asyncpg.connect(dsn)
    try:
        have = int(await conn.fetchval("SELECT count(*) FROM board_scores WHERE board = 'global'"))
        now = datetime.now(UTC)
        seq = first_seq
        if have == 0:
            rows = []
            for player in active:
                seq += 1
                rows.append(
                    ("global", uuid.UUID(player["user_id"]), random.randint(1, MAX_SCORE), seq, now)
                )
            await conn.copy_records_to_table(
                "board_scores",
                records=rows,
                columns=["board", "user_id", "score", "last_event_seq", "updated_at"],
            )
            have = len(rows)
        missing = total - have
        users, scores = [], []
        for _ in range(missing):
            seq += 1
            user_id = uuid.uuid4()
            name = f"p{user_id.hex[:14]}"
            score = random.randint(1, MAX_SCORE)
            users.append((user_id, name, name, f"{name}@bench.invalid", "-", score, score, seq))
            scores.append(("global", user_id, score, seq, now))
        await conn.copy_records_to_table(
            "users",
            records=users,
            columns=[
                "id", "username", "username_key", "email", "password_hash",
                "current_score", "total_score", "last_event_seq",
            ],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "board_scores",
            records=scores,
            columns=["board", "user_id", "score", "last_event_seq", "updated_at"],
        )
        await conn.execute("ANALYZE users; ANALYZE board_scores")
        return seq
    finally:
        await conn.close()


def board_command(deployment: Deployment, command: str) -> tuple[float, float]:
    """`scoreboard <command> --board global`: its wall time and CPU time, in seconds.
    A command that did not run because the syncer's own reconcile or rebuild of the
    board was under way ("not run: ...") is run again once that is over; the attempt
    that ran is the one measured."""
    for _ in range(120):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "scoreboard", command, "--board", "global"],
            env=deployment.env(),
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode == 0:
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            return wall, cpu
        if "not run:" not in done.stderr:
            raise RuntimeError(f"scoreboard {command} failed:\n{done.stdout}{done.stderr}")
        time.sleep(1)
    raise RuntimeError(f"scoreboard {command} never ran: {done.stderr}")


async def memory_per_player(redis_url: str, prefix: str) -> dict[str, float]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        board = Keys(prefix).board("global")
        players = int(await client.zcard(board.leaderboard))
        ranking = int(await client.memory_usage(board.leaderboard, samples=0) or 0)
        entries = int(await client.memory_usage(board.players, samples=0) or 0)
    finally:
        await client.aclose()
    return {
        "players": players,
        "sorted_set_bytes_per_player": ranking / players,
        "players_hash_bytes_per_player": entries / players,
        "bytes_per_player": (ranking + entries) / players,
    }


async def watched(deployment: Deployment, *args: Any) -> tuple[dict[str, Any], float]:
    """A load generator phase, and the share of it during which the syncer's periodic
    compare was running (it holds the board's trim hold): a compare of a million
    players slows the reads while it runs, so each phase's figures say whether one
    fell inside it."""
    client = aioredis.Redis.from_url(deployment.redis_url)
    hold = Keys(deployment.prefix).trim_hold()
    phase = asyncio.ensure_future(asyncio.to_thread(loadgen, *args))
    looks = held = 0
    try:
        while not phase.done():
            looks += 1
            held += int(await client.exists(hold))
            await asyncio.wait({phase}, timeout=COMPARE_LOOK_SECONDS)
    finally:
        await client.aclose()
    return json.loads(await phase), held / max(1, looks)


async def measure(
    deployment: Deployment, workdir: Path, active: list[dict[str, str]], seconds: float
) -> dict[str, Any]:
    url = deployment.url
    paths = workdir / "paths.jsonl"
    phases: dict[str, Any] = {}
    compare: dict[str, float] = {}
    phases["top10"], compare["top10"] = await watched(
        deployment, "get:/leaderboard/top10", url, seconds, CONCURRENCY
    )
    paths.write_text(
        "\n".join(json.dumps({"path": f"/scores/user/{p['user_id']}"}) for p in active)
    )
    phases["player"], compare["player"] = await watched(
        deployment, "paths", url, seconds, CONCURRENCY, paths
    )
    paths.write_text(
        "\n".join(json.dumps({"path": f"/leaderboard/around/{p['user_id']}"}) for p in active)
    )
    phases["around"], compare["around"] = await watched(
        deployment, "paths", url, seconds, CONCURRENCY, paths
    )

    players_file = workdir / "players.jsonl"
    tokens_file = workdir / "tokens.jsonl"
    tokens = int(seconds * 6000)  # a closed loop of 4 ran up to about 3,300 updates a second
    tokens_file.write_text(loadgen("issue", url, seconds, 32, players_file, tokens))
    meter = CpuMeter({"syncer": deployment.processes["syncer"].pid}, {})
    meter.start()
    phases["update"], compare["update"] = await watched(
        deployment, "updates", url, seconds, CONCURRENCY, tokens_file
    )
    await wait_drained(deployment.redis_url, Keys(deployment.prefix).events())
    used, _ = meter.stop()
    requests = max(1, phases["update"]["requests"])
    return {
        "latency_ms": {
            name: {"p50": phase["p50_ms"], "p99": phase["p99_ms"], "requests": phase["requests"]}
            for name, phase in phases.items()
        },
        "syncer_cpu_us_per_update": round(used["syncer"] / requests * 1e6, 1),
        "compare_share": compare,
    }


async def one_run(
    redis_url: str, admin_dsn: str, large: int, seconds: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sbscale-") as tmp:
        workdir = Path(tmp)
        deployment = Deployment(redis_url, admin_dsn, 1, workdir, env)
        await deployment.start()
        try:
            active = await seed_players(deployment.url, ACTIVE, workdir / "players.jsonl")
            dsn = with_database(admin_dsn, deployment.database)
            sizes: dict[str, Any] = {}
            seq = 0
            for size in (SMALL, large):
                started = time.perf_counter()
                seq = await fill(dsn, active, size, seq + 1_000_000)
                filled = time.perf_counter() - started
                rebuilt, _ = board_command(deployment, "rebuild")
                reconciled, reconcile_cpu = board_command(deployment, "reconcile")
                sizes[str(size)] = {
                    "fill_seconds": round(filled, 1),
                    "rebuild_seconds": round(rebuilt, 2),
                    "reconcile_seconds": round(reconciled, 2),
                    "reconcile_cpu_us_per_player": round(reconcile_cpu / size * 1e6, 2),
                    "memory": await memory_per_player(redis_url, deployment.prefix),
                    **await measure(deployment, workdir, active, seconds),
                }
        finally:
            await deployment.stop()
    return sizes


OPERATIONS = (
    ("update", "score update"),
    ("top10", "top 10"),
    ("player", "a player's score"),
    ("around", "around a player"),
)


def medians(runs: list[Any]) -> Any:
    """The runs' figures, each number the median of its place in every run."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: medians([run[key] for run in runs]) for key in first}
    if isinstance(first, int | float) and not isinstance(first, bool):
        return statistics.median(runs)
    return first


def p99_ratios(sizes: dict[str, Any]) -> dict[str, float]:
    """Each operation's p99 at the large board over its p99 at the small one."""
    small, large = sizes[str(SMALL)]["latency_ms"], sizes[max(sizes, key=int)]["latency_ms"]
    return {
        name: (large[name]["p99"] / small[name]["p99"] if small[name]["p99"] else 0.0)
        for name, _ in OPERATIONS
    }


def _during_compare(run: dict[str, Any], name: str) -> str:
    share = run[max(run, key=int)].get("compare_share", {}).get(name, 0.0)
    return f" (compare {share:.0%})" if share else ""


def write_report(sizes: dict[str, Any], seconds: float, runs: list[Any] | None = None) -> str:
    small, large = sizes[str(SMALL)], sizes[max(sizes, key=int)]
    small_n, large_n = SMALL, int(max(sizes, key=int))
    count = len(runs) if runs else 1
    lines = [
        "# Cost against the board's size",
        "",
        f"`python -m bench.scale`: one server worker, {CONCURRENCY} connections in a closed "
        f"loop, {seconds:g} s per operation; the same board at {small_n:,} and at "
        f"{large_n:,} players in one run"
        + (f"; medians of {count} runs, each on a fresh deployment." if count > 1 else "."),
        "",
        f"| operation | p50 ms at {small_n:,} | p99 ms at {small_n:,} | p50 ms at {large_n:,} "
        f"| p99 ms at {large_n:,} | p99 ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ratios = p99_ratios(sizes)
    for name, label in OPERATIONS:
        a, b = small["latency_ms"][name], large["latency_ms"][name]
        lines.append(
            f"| {label} | {a['p50']:.2f} | {a['p99']:.2f} | {b['p50']:.2f} | {b['p99']:.2f} "
            f"| {ratios[name]:.2f} |"
        )
    lines += [
        "",
        "| at | rebuild s | reconcile s (its CPU µs per player) "
        "| Redis bytes per player (sorted set + players hash) | syncer CPU µs per update |",
        "| ---: | ---: | ---: | --- | ---: |",
    ]
    for n, size in ((small_n, small), (large_n, large)):
        memory = size["memory"]
        lines.append(
            f"| {n:,} | {size['rebuild_seconds']:.2f} | {size['reconcile_seconds']:.2f} "
            f"({size['reconcile_cpu_us_per_player']:.1f}) | {memory['bytes_per_player']:.0f} "
            f"({memory['sorted_set_bytes_per_player']:.0f} + "
            f"{memory['players_hash_bytes_per_player']:.0f}) "
            f"| {size['syncer_cpu_us_per_update']:.0f} |"
        )
    if runs and count > 1:
        lines += [
            "",
            "Each run's p99 ratios (large over small), with the share of the large board's"
            " phase during which the syncer's periodic compare was running where it was: "
            + "; ".join(
                ", ".join(
                    f"{label} {p99_ratios(run)[name]:.2f}" + _during_compare(run, name)
                    for name, label in OPERATIONS
                )
                for run in runs
            )
            + ". Each run's rebuild of the large board: "
            + ", ".join(f"{run[max(run, key=int)]['rebuild_seconds']:.2f} s" for run in runs)
            + ".",
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="cost against the board's size")
    parser.add_argument("--players", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--runs", type=int, default=1, help="runs whose medians are reported")
    parser.add_argument(
        "--reconcile-interval-ms",
        help="the syncer's SCOREBOARD_RECONCILE_INTERVAL_MS (0: no periodic reconcile, to "
        "tell its effect on latency from the board's size)",
    )
    args = parser.parse_args()
    env = {}
    if args.reconcile_interval_ms is not None:
        env["SCOREBOARD_RECONCILE_INTERVAL_MS"] = args.reconcile_interval_ms
    redis_url = services.redis_url()
    admin_dsn = services.admin_dsn()
    runs = [
        asyncio.run(one_run(redis_url, admin_dsn, args.players, args.seconds, env))
        for _ in range(args.runs)
    ]
    sizes = medians(runs)
    report = write_report(sizes, args.seconds, runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "SCALE.md").write_text(report)
    (args.out / "scale.json").write_text(json.dumps(sizes, indent=2) + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
