"""The benchmark's load generator: a lean keep-alive HTTP/1.1 client on asyncio, run in
a process of its own. It reports its own CPU use so a run can show it was not the
bottleneck.

    python bench/loadgen.py PHASE --url URL --seconds S --concurrency C [--input FILE]

PHASE: `get:/path` (repeat one GET), `paths` (GETs of the paths in --input, one JSON
object with a "path" per line, taken in turn), `pairs` (action token then score update, per
player from --input), `updates` (spend pre-issued tokens from --input), `issue` (issue
tokens for the players in --input and print them). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

INCREASE = 1


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n{headers}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_and_headers = await self.reader.readuntil(b"\r\n\r\n")
        status = int(status_and_headers[9:12])
        length = 0
        for line in status_and_headers.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload


def _auth(access: str, token: str | None = None) -> str:
    header = f"Authorization: Bearer {access}\r\n"
    return header + (f"X-Action-Token: {token}\r\n" if token else "")


class Run:
    def __init__(self, url: str, seconds: float, rate: float = 0, concurrency: int = 1) -> None:
        self.concurrency = concurrency
        self.pace = 1 / rate if rate else 0.0
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.deadline = time.perf_counter() + seconds
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.accepted: Counter[str] = Counter()
        self.issued: list[str] = []

    def live(self) -> bool:
        return time.perf_counter() < self.deadline

    async def timed(
        self, conn: Connection, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        started = time.perf_counter()
        status, payload = await conn.request(method, path, body, headers)
        self.latencies.append(time.perf_counter() - started)
        self.statuses[status] += 1
        return status, payload


async def get_loop(run: Run, path: str, _: int, __: Any) -> None:
    conn = Connection(run.host, run.port)
    while run.live():
        await run.timed(conn, "GET", path)


async def paths_loop(run: Run, _: str, worker: int, items: list[dict[str, str]]) -> None:
    conn = Connection(run.host, run.port)
    index = worker
    while run.live():
        await run.timed(conn, "GET", items[index % len(items)]["path"])
        index += run.concurrency


TOKEN_BODY = b'{"action_type": "game_completion", "session_id": "bench"}'
UPDATE_BODY = json.dumps({"score_increase": INCREASE}).encode()


async def pairs_loop(run: Run, _: str, worker: int, players: list[dict[str, str]]) -> None:
    conn = Connection(run.host, run.port)
    index = worker
    while run.live():
        player = players[index % len(players)]
        index += 1
        status, body = await run.timed(
            conn, "POST", "/auth/action-token", TOKEN_BODY, _auth(player["access"])
        )
        if status != 200:
            continue
        token = json.loads(body)["data"]["action_token"]
        status, _ = await run.timed(
            conn, "POST", "/scores/update", UPDATE_BODY, _auth(player["access"], token)
        )
        if status == 200:
            run.accepted[player["user_id"]] += INCREASE


async def updates_loop(run: Run, _: str, worker: int, tokens: list[dict[str, str]]) -> None:
    conn = Connection(run.host, run.port)
    next_at = time.perf_counter() + worker * run.pace
    while run.live() and tokens:
        if run.pace:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            next_at += run.pace * run.concurrency
        item = tokens.pop()
        status, _ = await run.timed(
            conn, "POST", "/scores/update", UPDATE_BODY, _auth(item["access"], item["token"])
        )
        if status == 200:
            run.accepted[item["user_id"]] += INCREASE


def token_body(board: str | None) -> bytes:
    """The token request, for the global board or another one."""
    if not board:
        return TOKEN_BODY
    return json.dumps(
        {"action_type": "game_completion", "session_id": "bench", "board": board}
    ).encode()


async def issue_loop(run: Run, _: str, worker: int, todo: list[dict[str, str]]) -> None:
    conn = Connection(run.host, run.port)
    while todo:
        player = todo.pop()
        body_out = token_body(player.get("board"))
        status, body = await conn.request(
            "POST", "/auth/action-token", body_out, _auth(player["access"])
        )
        if status == 200:
            token = json.loads(body)["data"]["action_token"]
            run.issued.append(json.dumps({**player, "token": token}))


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase")
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--input", help="JSON lines: players or pre-issued tokens")
    parser.add_argument("--count", type=int, default=0, help="issue: tokens to issue")
    parser.add_argument("--rate", type=float, default=0, help="updates: requests/s (0: flat out)")
    parser.add_argument(
        "--boards",
        default="",
        help="issue: comma-separated boards, taken in turn (default: global)",
    )
    args = parser.parse_args()

    items: list[dict[str, str]] = []
    if args.input:
        with open(args.input) as handle:
            items = [json.loads(line) for line in handle if line.strip()]
    loops = {
        "pairs": pairs_loop,
        "updates": updates_loop,
        "issue": issue_loop,
        "paths": paths_loop,
    }
    phase, _, path = args.phase.partition(":")
    loop = get_loop if phase == "get" else loops[phase]
    if phase == "issue":
        boards = [name for name in args.boards.split(",") if name]
        items = [
            {**items[i % len(items)], **({"board": boards[i % len(boards)]} if boards else {})}
            for i in range(args.count)
        ]
    run = Run(args.url, args.seconds, args.rate, args.concurrency)
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(loop(run, path, w, items) for w in range(args.concurrency)))
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    if phase == "issue":
        print("\n".join(run.issued))
        return
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    requests = len(run.latencies)
    print(
        json.dumps(
            {
                "phase": args.phase,
                "requests": requests,
                "seconds": round(wall, 3),
                "requests_per_second": round(requests / wall, 1),
                "p50_ms": round(_quantile(run.latencies, 0.50) * 1000, 2),
                "p99_ms": round(_quantile(run.latencies, 0.99) * 1000, 2),
                "mean_ms": round(statistics.fmean(run.latencies) * 1000, 2) if requests else 0,
                "statuses": {str(k): v for k, v in run.statuses.items()},
                "accepted": dict(run.accepted),
                "loadgen_cpu_share": round(cpu / wall, 2),
            }
        )
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
