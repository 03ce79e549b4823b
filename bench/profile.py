"""Where a score update's time goes: the server and the syncer sampled with py-spy while
updates flow, and the scripts' own cost from Redis `INFO commandstats`.

    .venv/bin/python -m bench.profile [--seconds 10] [--out bench]

The same deployment as `bench.run` (its own key prefix and database). Phase 1 samples
the server under `GET /health` (its floor), phase 2 under score updates (one fresh
action token each), with the syncer sampled too. Writes bench/PROFILE.md: for each
sampled process, the functions with the most samples on top of the stack (self) and
anywhere in it (inclusive), as shares of all samples; and the Redis commands per update
with their microseconds per call. Needs py-spy (`pip install py-spy`) and, on Linux,
the right to read another process's memory (root, or ptrace_scope 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench import services
from bench.run import Deployment, loadgen, seed_players

HERE = Path(__file__).resolve().parent
TOP = 25


def _frame_name(frame: str) -> str:
    """'function (path/to/module.py:12)' -> 'function (module.py)': a function, not a line."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    marker = "site-packages/"
    if marker in path:
        path = path.split(marker, 1)[1]
    elif "/scoreboard/" in path:
        path = "scoreboard/" + path.split("/scoreboard/", 1)[1]
    return f"{name} ({path})"


def summarise_stacks(raw: str) -> dict[str, Any]:
    """Self and inclusive sample shares by function, from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";") if "(" in frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            anywhere[name] += count
    return {
        "samples": total,
        "self": [(name, n / total) for name, n in own.most_common(TOP)] if total else [],
        "inclusive": [(name, n / total) for name, n in anywhere.most_common(TOP)] if total else [],
    }


def record(pid: int, seconds: float, path: Path) -> subprocess.Popen[bytes]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [
        py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
        "--rate", "200", "--format", "raw", "--nonblocking", "--output", str(path),
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def commandstats(redis_url: str) -> dict[str, tuple[int, float]]:
    """Command -> (calls, total microseconds) since the last reset."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("commandstats")
    finally:
        await client.aclose()
    return {
        name.removeprefix("cmdstat_"): (int(stats["calls"]), float(stats["usec"]))
        for name, stats in info.items()
    }


def _delta(
    before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]]
) -> dict[str, tuple[int, float]]:
    return {
        name: (calls - before.get(name, (0, 0.0))[0], usec - before.get(name, (0, 0.0))[1])
        for name, (calls, usec) in after.items()
        if calls > before.get(name, (0, 0.0))[0]
    }


async def _profile(seconds: float, redis_url: str, admin_dsn: str, players: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sbprofile-") as tmp:
        workdir = Path(tmp)
        deployment = Deployment(redis_url, admin_dsn, 1, workdir)
        await deployment.start()
        try:
            url, conc = deployment.url, 64
            players_file = workdir / "players.jsonl"
            await seed_players(url, players, players_file)
            server = deployment.processes["server"].pid
            syncer = deployment.processes["syncer"].pid

            spy = record(server, seconds, workdir / "health.txt")
            health = json.loads(loadgen("get:/health", url, seconds, conc))
            spy.wait()

            tokens_file = workdir / "tokens.jsonl"
            tokens = int(health["requests_per_second"] * seconds) + 200
            tokens_file.write_text(loadgen("issue", url, seconds, conc, players_file, tokens))
            before = await commandstats(redis_url)
            spies = {
                "server": record(server, seconds, workdir / "server.txt"),
                "syncer": record(syncer, seconds, workdir / "syncer.txt"),
            }
            updates = json.loads(loadgen("updates", url, seconds, conc, tokens_file))
            for one in spies.values():
                one.wait()
            calls = _delta(before, await commandstats(redis_url))
            profiles = {
                "server under GET /health": summarise_stacks((workdir / "health.txt").read_text()),
                **{
                    f"{name} under score updates": summarise_stacks(
                        (workdir / f"{name}.txt").read_text()
                    )
                    for name in spies
                },
            }
        finally:
            await deployment.stop()
    return {
        "health_per_second": health["requests_per_second"],
        "updates_per_second": updates["requests_per_second"],
        "updates": updates["requests"],
        "redis": calls,
        "profiles": profiles,
    }


def write_report(result: dict[str, Any], seconds: float) -> str:
    updates = max(1, result["updates"])
    lines = [
        "# Profiles",
        "",
        f"`python -m bench.profile`: one server worker, {seconds:g} s per phase, py-spy at "
        f"200 samples/s. GET /health {result['health_per_second']:.0f}/s, score updates "
        f"{result['updates_per_second']:.0f}/s.",
        "",
        "## Redis, per score update",
        "",
        "| command | calls per update | µs per call | µs per update |",
        "| --- | ---: | ---: | ---: |",
    ]
    rows = sorted(result["redis"].items(), key=lambda item: -item[1][1])
    for name, (calls, usec) in rows[:12]:
        lines.append(
            f"| {name} | {calls / updates:.2f} | {usec / calls:.1f} | {usec / updates:.1f} |"
        )
    for title, profile in result["profiles"].items():
        lines += ["", f"## {title} ({profile['samples']} samples)"]
        for kind, heading in (("self", "on top of the stack"), ("inclusive", "anywhere in it")):
            lines += ["", f"| share | function, {heading} |", "| ---: | --- |"]
            lines += [f"| {share * 100:.1f}% | `{name}` |" for name, share in profile[kind]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="profile the score update")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--players", type=int, default=200)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    redis_url = services.redis_url()
    admin_dsn = services.admin_dsn()
    result = asyncio.run(_profile(args.seconds, redis_url, admin_dsn, args.players))
    report = write_report(result, args.seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "PROFILE.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
