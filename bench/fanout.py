"""Fan-out latency: publish -> client receive, for many WebSocket or SSE clients on one
server process while score updates flow at a fixed rate.

    .venv/bin/python -m bench.fanout [--clients 1000 5000] [--sse 500] [--rate 1000] [--runs 3]

Latency is a message's receive time minus the time of the newest change it carries
(both from this machine's clock), so it includes the coalescing interval. Clients run
in a process of their own, pinned away from the server; 100 of them, spread over the
connection order, time every message they get with a full WebSocket client. The other
WebSocket clients read the frames' headers only (answering pings), so one process can
keep up with thousands of them and the clients' machine does not measure itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from bench import services
from bench.run import Deployment, _cpu_split, _pin, loadgen, seed_players

HERE = Path(__file__).resolve().parent
PROBES = 100


def _stamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class _SilentClient(asyncio.Protocol):
    """A WebSocket client that subscribes, then skips over every frame it gets, reading
    only frame headers: pings get their pong, a close ends it."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.buffer = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.frames = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        host, _, path = self.target.partition("/")
        transport.write(
            f"GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            head, found, _ = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self._finish(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                return
            del self.buffer[: len(head) + 4]
            self.upgraded = True
            self._send(Opcode.TEXT, json.dumps({"type": "subscribe_leaderboard"}).encode())
        self._skip_frames()

    def _skip_frames(self) -> None:
        buffer, offset = self.buffer, 0
        while len(buffer) - offset >= 2:
            opcode, length = buffer[offset] & 0x0F, buffer[offset + 1] & 0x7F
            start = offset + 2
            if length == 126:
                (length,), start = struct.unpack_from("!H", buffer, start), start + 2
            elif length == 127:
                (length,), start = struct.unpack_from("!Q", buffer, start), start + 8
            if len(buffer) < start + length:
                break
            if opcode == Opcode.PING.value:
                self._send(Opcode.PONG, bytes(buffer[start : start + length]))
            elif opcode == Opcode.CLOSE.value:
                self._finish(None)
            self.frames += 1
            offset = start + length
        del buffer[:offset]

    def _send(self, opcode: Opcode, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(Frame(opcode, payload).serialize(mask=True))

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc)

    def _finish(self, exc: Exception | None) -> None:
        if not self.closed.done():
            if exc is None:
                self.closed.set_result(None)
            else:
                self.closed.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


async def _silent_ws_client(url: str, seconds: float) -> None:
    parts = urlsplit(url)
    target = f"{parts.netloc}{parts.path}?{parts.query}"
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: _SilentClient(target), parts.hostname, parts.port
    )
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await asyncio.shield(client.closed)
    client._finish(None)
    if client.frames == 0:
        raise ConnectionError("no frame received")


async def _ws_client(url: str, seconds: float, latencies: list[float] | None) -> None:
    """A probe: a full WebSocket client that times every message."""
    if latencies is None:
        await _silent_ws_client(url, seconds)
        return
    async with connect(url, open_timeout=60, max_queue=64) as ws:
        await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
        first = True
        # One deadline for the whole stream: a timeout per message (`wait_for`) would
        # cost a task per message per client, and the clients' machine would measure
        # itself instead of the server.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    raw = await ws.recv()
                    if not first:
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
    redis_url = services.redis_url()
    admin_dsn = services.admin_dsn()
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    plan = [("ws", n) for n in args.clients] + ([("sse", args.sse)] if args.sse else [])
    # Configurations take turns, so a machine whose speed drifts skews none of them.
    for _ in range(args.runs):
        for kind, count in plan:
            with tempfile.TemporaryDirectory(prefix="sbfan-") as tmp:
                workdir = Path(tmp)
                limits = {"SCOREBOARD_SSE_MAX_CONNECTIONS_PER_IP": str(max(count, 20))}
                deployment = Deployment(redis_url, admin_dsn, 1, workdir, limits)
                await deployment.start()
                try:
                    players = await seed_players(deployment.url, 50, workdir / "players.jsonl")
                    result = await measure(
                        deployment,
                        kind,
                        count,
                        args.rate,
                        args.seconds,
                        workdir,
                        players[0]["access"],
                    )
                finally:
                    await deployment.stop()
            print(json.dumps(result), flush=True)
            runs.setdefault((kind, count), []).append(result)
    return [_median_of(kind, count, results, args.rate) for (kind, count), results in runs.items()]


def _median_of(kind: str, count: int, runs: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    def median(field: str) -> float | None:
        values = [r[field] for r in runs if r[field] is not None]
        return round(statistics.median(values), 2) if values else None

    return {
        "kind": kind,
        "clients": count,
        "runs": len(runs),
        "failed_clients": max(r["failed_clients"] for r in runs),
        "messages": median("messages"),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "p99_ms_per_run": [r["p99_ms"] for r in runs],
        "client_cpu_share": median("client_cpu_share"),
        "updates_per_second": rate,
    }


def write_report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    lines = [
        "# Fan-out latency",
        "",
        f"One server process (1 worker) on {os.cpu_count()} CPUs, {args.rate:g} score "
        f"updates/s for {args.seconds:g} s, broadcast interval 100 ms; latency = receive "
        "time minus the time of the newest change a message carries. Medians of "
        f"{args.runs} runs. Goal: p99 ≤ 250 ms at 5,000 WebSocket clients.",
        "",
        "| clients | messages timed (100 probes) | p50 ms | p99 ms | p99 per run | "
        "failed clients | client CPU |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        per_run = " / ".join(str(p) for p in r["p99_ms_per_run"])
        lines.append(
            f"| {r['clients']} {r['kind'].upper()} | {r['messages']:g} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {per_run} | {r['failed_clients']} | "
            f"{r['client_cpu_share'] * 100:.0f}% |"
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
    parser.add_argument("--runs", type=int, default=3)
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
