"""Fan-out latency: publish -> client receive, for many WebSocket or SSE clients on one
server process while score updates flow at a fixed rate.

    .venv/bin/python -m bench.fanout [--clients 1000 5000] [--sse 500] [--rate 1000]

Latency is a message's receive time minus the time of the newest change it carries
(both from this machine's clock), so it includes the coalescing interval. Clients run
in a process of their own, pinned away from the server; 100 of them, spread over the
connection order, time every message they get.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.run import Deployment, _cpu_split, _pin, loadgen, seed_players

HERE = Path(__file__).resolve().parent
PROBES = 100


def _stamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def _ws_client(url: str, seconds: float, latencies: list[float] | None) -> None:
    """A probe (with `latencies`) times every message; the others only receive, so the
    client process spends its time on the network rather than on JSON."""
    async with connect(url, open_timeout=60, max_queue=64) as ws:
        await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
        first = True
        # One deadline for the whole stream: a timeout per message (`wait_for`) would
        # cost a task per message per client, and the clients' machine would measure
        # itself instead of the server.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    raw = await ws.recv(decode=latencies is not None)
                    if latencies is not None and not first:
                        message = json.loads(raw)
                        if message.get("type") == "leaderboard_update":
                            latencies.append(time.time() - _stamp(message["data"]["timestamp"]))
                    first = False


async def _sse_client(
    http: httpx.AsyncClient, url: str, seconds: float, latencies: list[float] | None
) -> None:
    async with http.stream("GET", url) as response:
        deadline = time.time() + seconds
        first = True
        async for line in response.aiter_lines():
            if time.time() > deadline:
                return
            if line.startswith("data:") and latencies is not None:
                if not first:
                    stamp = json.loads(line[5:])["timestamp"]
                    latencies.append(time.time() - _stamp(stamp))
                first = False


async def clients_main(kind: str, url: str, count: int, seconds: float, ramp: float) -> None:
    latencies: list[float] = []
    # SSE streams share one HTTP client (a connection each): building a client per
    # stream costs tens of milliseconds of TLS set-up, enough for 500 of them to use
    # up the whole measuring window before the first byte is read.
    http = (
        httpx.AsyncClient(
            timeout=None, limits=httpx.Limits(max_connections=None, max_keepalive_connections=0)
        )
        if kind == "sse"
        else None
    )
    client = _ws_client if http is None else functools.partial(_sse_client, http)
    tasks = []
    for index in range(count):
        probe = latencies if index % max(1, count // PROBES) == 0 else None
        tasks.append(asyncio.create_task(client(url, seconds + ramp, probe)))
        if index % 100 == 99:
            await asyncio.sleep(ramp * 100 / count)
    cpu_start = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    if http is not None:
        await http.aclose()
    cpu_end = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.time() - started
    cpu = (cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime)
    ordered = sorted(latencies)
    print(
        json.dumps(
            {
                "kind": kind,
                "clients": count,
                "failed_clients": sum(isinstance(r, Exception) for r in results),
                "messages": len(ordered),
                "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
                "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 1)
                if ordered
                else None,
                "client_cpu_share": round(cpu / wall, 2),
            }
        )
    )


async def measure(
    deployment: Deployment,
    kind: str,
    count: int,
    rate: float,
    seconds: float,
    workdir: Path,
    access: str,
) -> dict[str, Any]:
    ramp = max(2.0, count / 500)
    if kind == "ws":
        url = deployment.url.replace("http://", "ws://") + f"/ws/leaderboard?token={access}"
    else:
        url = deployment.url + "/sse/leaderboard"
    _, client_cpu = _cpu_split()
    clients = subprocess.Popen(
        [
            *_pin(client_cpu),
            sys.executable,
            "-m",
            "bench.fanout",
            "--clients-of",
            kind,
            "--url",
            url,
            "--count",
            str(count),
            "--seconds",
            str(seconds),
            "--ramp",
            str(ramp),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    await asyncio.sleep(ramp + 1)
    tokens = workdir / "tokens.jsonl"
    players = workdir / "players.jsonl"
    tokens.write_text(loadgen("issue", deployment.url, 1, 32, players, int(rate * seconds) + 100))
    await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            str(HERE / "loadgen.py"),
            "updates",
            "--url",
            deployment.url,
            "--seconds",
            str(seconds - 1),
            "--concurrency",
            "32",
            "--input",
            str(tokens),
            "--rate",
            str(rate),
        ],
        check=True,
        capture_output=True,
    )
    out, _ = await asyncio.to_thread(clients.communicate)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    admin_dsn = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    results = []
    plan = [("ws", n) for n in args.clients] + ([("sse", args.sse)] if args.sse else [])
    for kind, count in plan:
        with tempfile.TemporaryDirectory(prefix="sbfan-") as tmp:
            workdir = Path(tmp)
            limits = {"SCOREBOARD_SSE_MAX_CONNECTIONS_PER_IP": str(max(count, 20))}
            deployment = Deployment(redis_url, admin_dsn, 1, workdir, limits)
            await deployment.start()
            try:
                players = await seed_players(deployment.url, 50, workdir / "players.jsonl")
                result = await measure(
                    deployment, kind, count, args.rate, args.seconds, workdir, players[0]["access"]
                )
            finally:
                await deployment.stop()
        result["updates_per_second"] = args.rate
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def write_report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    lines = [
        "# Fan-out latency",
        "",
        f"One server process (1 worker) on {os.cpu_count()} CPUs, {args.rate:g} score "
        f"updates/s for {args.seconds:g} s, broadcast interval 100 ms; latency = receive "
        "time minus the time of the newest change a message carries. Goal: p99 ≤ 250 ms "
        "at 5,000 WebSocket clients.",
        "",
        "| clients | messages timed (100 probes) | p50 ms | p99 ms | failed clients | client CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['clients']} {r['kind'].upper()} | {r['messages']} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r['failed_clients']} | {r['client_cpu_share'] * 100:.0f}% |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "FANOUT.md").write_text("\n".join(lines) + "\n")
    (args.out / "fanout.json").write_text(json.dumps(results, indent=2))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--clients", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--sse", type=int, default=500)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients-of", choices=["ws", "sse"])
    parser.add_argument("--url")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--ramp", type=float, default=2)
    args = parser.parse_args()
    if args.clients_of:
        asyncio.run(clients_main(args.clients_of, args.url, args.count, args.seconds, args.ramp))
        return 0
    write_report(asyncio.run(main_async(args)), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
