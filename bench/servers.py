"""uvicorn (the server `scoreboard serve` runs) against granian, in one run.

    .venv/bin/python -m bench.servers [--seconds 6] [--rounds 2] [--out bench]

The same application (`create_app_from_env`), the same Redis, PostgreSQL and players:
`bench.run`'s deployment serves it with uvicorn while granian (`pip install granian`,
one worker, uvloop) serves it on the next port. In alternating rounds each server takes
the GET /health ceiling, score updates (pre-issued tokens) and top-10 reads. Writes
bench/SERVERS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import services
from bench.run import Deployment, _cpu_split, _pin, loadgen, seed_players, wait_until_up

HERE = Path(__file__).resolve().parent
CONCURRENCY = 64


def _phases(url: str, seconds: float, players: Path, workdir: Path) -> dict[str, float]:
    health = json.loads(loadgen("get:/health", url, seconds, CONCURRENCY))
    tokens = workdir / "tokens.jsonl"
    count = int(health["requests_per_second"] * seconds / 3) + 200
    tokens.write_text(loadgen("issue", url, seconds, CONCURRENCY, players, count))
    updates = json.loads(loadgen("updates", url, seconds, CONCURRENCY, tokens))
    top10 = json.loads(loadgen("get:/leaderboard/top10", url, seconds, CONCURRENCY))
    return {
        "health": health["requests_per_second"],
        "updates": updates["requests_per_second"],
        "top10": top10["requests_per_second"],
    }


async def compare(redis_url: str, admin_dsn: str, seconds: float, rounds: int) -> dict[str, Any]:
    granian = shutil.which("granian") or str(Path(sys.executable).parent / "granian")
    if not os.path.exists(granian):
        raise SystemExit("granian is needed: pip install granian")
    with tempfile.TemporaryDirectory(prefix="sbservers-") as tmp:
        workdir = Path(tmp)
        deployment = Deployment(redis_url, admin_dsn, 1, workdir)
        await deployment.start()
        port = deployment.port + 1
        server_cpus, _ = _cpu_split()
        command = [
            *_pin(server_cpus), granian, "--interface", "asgi", "--factory", "--host",
            "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--workers", "1",
            "scoreboard.api.app:create_app_from_env",
        ]  # fmt: skip
        log = (workdir / "granian.log").open("ab")
        process = subprocess.Popen(command, env=deployment.env(), stdout=log, stderr=log)
        urls = {"uvicorn": deployment.url, "granian": f"http://127.0.0.1:{port}"}
        measured: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
        try:
            await wait_until_up(urls["granian"], workdir / "granian.log")
            players = workdir / "players.jsonl"
            await seed_players(deployment.url, 200, players)
            for number in range(rounds):
                order = list(urls) if number % 2 == 0 else list(reversed(urls))
                for name in order:
                    phases = await asyncio.to_thread(_phases, urls[name], seconds, players, workdir)
                    measured[name].append(phases)
        finally:
            process.terminate()
            process.wait(20)
            await deployment.stop()
    return {
        name: {
            key: statistics.median(run[key] for run in runs)
            for key in ("health", "updates", "top10")
        }
        for name, runs in measured.items()
    }


def write_report(result: dict[str, Any], seconds: float, rounds: int) -> str:
    lines = [
        "# uvicorn and granian",
        "",
        f"`python -m bench.servers`: the same application, one worker each, {CONCURRENCY} "
        f"connections, {seconds:g} s per phase, medians of {rounds} alternating rounds.",
        "",
        "| server | GET /health /s | score updates /s | top-10 /s | updates : ceiling "
        "| top-10 : ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, rates in result.items():
        lines.append(
            f"| {name} | {rates['health']:.0f} | {rates['updates']:.0f} | {rates['top10']:.0f} "
            f"| {rates['updates'] / rates['health']:.2f} | {rates['top10'] / rates['health']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="uvicorn against granian")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    redis_url = services.redis_url()
    admin_dsn = services.admin_dsn()
    result = asyncio.run(compare(redis_url, admin_dsn, args.seconds, args.rounds))
    report = write_report(result, args.seconds, args.rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "SERVERS.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
