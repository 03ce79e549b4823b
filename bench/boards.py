"""The boards benchmark: what an update costs on a board with periods, and spread over
several boards, against the same load on a board with none, in one deployment.

    .venv/bin/python -m bench.boards [--rounds 3] [--seconds 8]

One server and one syncer (bench.run's deployment: own database and key prefix). An
admin creates `flat` (no periods), `timed` (daily, weekly and monthly) and four
`spread-N` boards (daily). Each round runs the same update phase (pre-issued tokens,
flat out) on `flat`, then on `timed`, then spread over the four, so drift between
phases of a round stays small; the report gives medians over the rounds of
throughput and of the CPU each process spent per update, and the ratios to `flat`.
At the end, every accepted point is on its board in Redis and in PostgreSQL.
Writes bench/BOARDS.md and bench/boards.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import services
from bench.cpu_use import CpuMeter
from bench.run import HERE, Deployment, loadgen, redis_client, seed_players, wait_drained
from bench.sync_drain import with_database
from scoreboard.storage.keys import Keys

PHASES = {
    "flat": ["flat"],
    "timed": ["timed"],
    "spread": [f"spread-{i}" for i in range(4)],
}
BOARDS = {
    "flat": [],
    "timed": ["daily", "weekly", "monthly"],
    **{name: ["daily"] for name in PHASES["spread"]},
}
ADMIN_PASSWORD = "bench admin password"


async def _admin_token(deployment: Deployment) -> str:
    name = "benchadmin"
    await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "scoreboard",
            "users",
            "create",
            name,
            "--email",
            "benchadmin@example.com",
            "--admin",
        ],
        input=f"{ADMIN_PASSWORD}\n",
        text=True,
        env=deployment.env(),
        check=True,
        capture_output=True,
    )
    async with httpx.AsyncClient(base_url=deployment.url) as http:
        login = await http.post("/auth/login", json={"username": name, "password": ADMIN_PASSWORD})
        return str(login.json()["data"]["access_token"])


async def _create_boards(deployment: Deployment, token: str) -> None:
    async with httpx.AsyncClient(base_url=deployment.url) as http:
        for name, periods in BOARDS.items():
            created = await http.post(
                "/admin/boards",
                json={"name": name, "action_types": {"game_completion": 1000}, "periods": periods},
                headers={"Authorization": f"Bearer {token}"},
            )
            created.raise_for_status()


async def _phase(
    deployment: Deployment,
    workdir: Path,
    players: Path,
    boards: list[str],
    seconds: float,
    concurrency: int,
    tokens: int,
) -> dict[str, Any]:
    tokens_file = workdir / "tokens.jsonl"
    tokens_file.write_text(
        loadgen("issue", deployment.url, seconds, concurrency, players, tokens, ",".join(boards))
    )
    meter = CpuMeter(
        {name: deployment.processes[name].pid for name in ("server", "syncer")},
        {"redis": "redis-server", "postgresql": "postgres"},
    )
    meter.start()
    result = json.loads(
        await asyncio.to_thread(
            loadgen, "updates", deployment.url, seconds, concurrency, tokens_file
        )
    )
    used, _ = meter.stop()
    requests = result["requests"] or 1
    return {
        "requests_per_second": result["requests_per_second"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "statuses": result["statuses"],
        "accepted_points": sum(result["accepted"].values()),
        "cpu_us_per_update": {name: round(cpu / requests * 1e6, 1) for name, cpu in used.items()},
    }


async def _totals(
    deployment: Deployment, redis_url: str, admin_dsn: str, cluster: bool
) -> tuple[int, int]:
    client = redis_client(redis_url, cluster)
    keys = Keys(deployment.prefix)
    on_boards = 0
    try:
        for name in BOARDS:
            await wait_drained(redis_url, keys.events(name), cluster=cluster)
            scores = await client.zrange(keys.leaderboard(name), 0, -1, withscores=True)
            on_boards += int(sum(score for _, score in scores))
    finally:
        await client.aclose()
    conn = await asyncpg.connect(with_database(admin_dsn, deployment.database))
    try:
        persisted = int(
            await conn.fetchval(
                "SELECT coalesce(sum(score), 0) FROM board_scores WHERE board = ANY($1::text[])",
                list(BOARDS),
            )
        )
    finally:
        await conn.close()
    return on_boards, persisted


async def run(
    rounds: int,
    seconds: float,
    concurrency: int,
    players: int,
    redis_url: str,
    admin_dsn: str,
    cluster: bool = False,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sbboards-") as tmp:
        workdir = Path(tmp)
        extra = {"SCOREBOARD_REDIS_CLUSTER": "true"} if cluster else {}
        deployment = Deployment(redis_url, admin_dsn, 1, workdir, extra_env=extra)
        await deployment.start()
        try:
            await _create_boards(deployment, await _admin_token(deployment))
            players_file = workdir / "players.jsonl"
            await seed_players(deployment.url, players, players_file)
            measured: dict[str, list[dict[str, Any]]] = {name: [] for name in PHASES}
            tokens = int(seconds * 8000) + 200  # then sized by what the phases took
            for _ in range(rounds):
                for name, boards in PHASES.items():
                    phase = await _phase(
                        deployment, workdir, players_file, boards, seconds, concurrency, tokens
                    )
                    measured[name].append(phase)
                    # enough tokens for the next round's phases to run their whole time
                    tokens = max(tokens, int(phase["requests_per_second"] * seconds * 1.5) + 200)
            on_boards, persisted = await _totals(deployment, redis_url, admin_dsn, cluster)
        finally:
            await deployment.stop()
    accepted = sum(p["accepted_points"] for runs in measured.values() for p in runs)
    return {
        "phases": measured,
        "accepted_points": accepted,
        "board_points": on_boards,
        "persisted_points": persisted,
        "correct": accepted == on_boards == persisted,
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, runs in result["phases"].items():
        cpu_names = sorted({key for run in runs for key in run["cpu_us_per_update"]})
        summary[name] = {
            "requests_per_second": _median([r["requests_per_second"] for r in runs]),
            "p99_ms": _median([r["p99_ms"] for r in runs]),
            "cpu_us_per_update": {
                cpu: _median([r["cpu_us_per_update"].get(cpu, 0.0) for r in runs])
                for cpu in cpu_names
            },
        }
    flat = summary["flat"]
    for phase in summary.values():
        phase["throughput_vs_flat"] = (
            round(phase["requests_per_second"] / flat["requests_per_second"], 3)
            if flat["requests_per_second"]
            else 0.0
        )
        phase["cpu_vs_flat"] = {
            cpu: round(us / flat["cpu_us_per_update"][cpu], 3)
            for cpu, us in phase["cpu_us_per_update"].items()
            if flat["cpu_us_per_update"].get(cpu)
        }
    return summary


def write_report(args: argparse.Namespace, summary: dict[str, Any], result: dict[str, Any]) -> str:
    lines = [
        "# Boards benchmark",
        "",
        f"`python -m bench.boards --rounds {args.rounds} --seconds {args.seconds:g}`: one server"
        " and one syncer on this machine, each round the same update phase on `flat` (no"
        " periods), `timed` (daily, weekly, monthly) and spread over four boards with a daily"
        f" period; medians of {args.rounds} rounds. On this shared 2-core machine compare the"
        " ratios and the CPU per update, not the absolute rates.",
        "",
        "| phase | updates/s | vs flat | p99 ms | server µs | Redis µs | syncer µs"
        " | PostgreSQL µs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, phase in summary.items():
        cpu = phase["cpu_us_per_update"]
        lines.append(
            f"| {name} | {phase['requests_per_second']:.0f} | {phase['throughput_vs_flat']:.2f} |"
            f" {phase['p99_ms']:.1f} | {cpu.get('server', 0):.0f} | {cpu.get('redis', 0):.0f} |"
            f" {cpu.get('syncer', 0):.0f} | {cpu.get('postgresql', 0):.0f} |"
        )
    lines += [
        "",
        f"Correct: {result['correct']} (accepted {result['accepted_points']} points; on the"
        f" boards {result['board_points']}; in PostgreSQL {result['persisted_points']}).",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="scoreboard boards benchmark")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--players", type=int, default=300)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--smoke", action="store_true", help="tiny run that checks the harness")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="then the same load on a 3-master cluster of its own: bench/CLUSTER.md",
    )
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.seconds, args.concurrency, args.players = 1, 1.0, 4, 5
    redis_url = services.redis_url()
    admin_dsn = services.admin_dsn()
    result = asyncio.run(
        run(args.rounds, args.seconds, args.concurrency, args.players, redis_url, admin_dsn)
    )
    summary = summarise(result)
    report = write_report(args, summary, result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "BOARDS.md").write_text(report)
    (args.out / "boards.json").write_text(
        json.dumps({"summary": summary, "result": result}, indent=2)
    )
    print(report)
    if args.cluster:
        return _with_cluster(args, result, admin_dsn)
    return 0 if result["correct"] else 1


def _with_cluster(args: argparse.Namespace, single: dict[str, Any], admin_dsn: str) -> int:
    """The same phases on a cluster of its own, reported beside the single Redis."""
    from tests import redis_cluster as lab

    with tempfile.TemporaryDirectory(prefix="sbbench-cluster-") as tmp:
        cluster = lab.start(Path(tmp) / "nodes")
        try:
            clustered = asyncio.run(
                run(
                    args.rounds,
                    args.seconds,
                    args.concurrency,
                    args.players,
                    cluster.url,
                    admin_dsn,
                    cluster=True,
                )
            )
        finally:
            lab.stop(cluster)
    one, many = summarise(single), summarise(clustered)
    lines = [
        "# Cluster benchmark",
        "",
        f"`python -m bench.boards --cluster --rounds {args.rounds} --seconds {args.seconds:g}`:"
        " the boards phases on this machine's Redis, then on a 3-master / 3-replica cluster"
        " on loopback (the same 2 cores); medians of the rounds. Redis µs is every"
        " redis-server process of the machine (the cluster's six nodes and the replication"
        " to their replicas included).",
        "",
        "| phase | one Redis updates/s | cluster updates/s | ratio | server µs | Redis µs"
        " (one → cluster) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in one:
        a, b = one[name], many[name]
        ratio = (
            b["requests_per_second"] / a["requests_per_second"] if a["requests_per_second"] else 0
        )
        lines.append(
            f"| {name} | {a['requests_per_second']:.0f} | {b['requests_per_second']:.0f} |"
            f" {ratio:.2f} | {a['cpu_us_per_update'].get('server', 0):.0f} →"
            f" {b['cpu_us_per_update'].get('server', 0):.0f} |"
            f" {a['cpu_us_per_update'].get('redis', 0):.0f} →"
            f" {b['cpu_us_per_update'].get('redis', 0):.0f} |"
        )
    correct = single["correct"] and clustered["correct"]
    lines += ["", f"Correct on both: {correct}.", ""]
    report = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "CLUSTER.md").write_text(report)
    print(report)
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
