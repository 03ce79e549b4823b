"""The soak run: minutes of mixed load on a real deployment while a nemesis breaks it.

    make soak                          # 5 minutes, a fault every 30 s, AOF `always`
    python -m bench.soak --short       # the CI version: about a minute
    python -m bench.soak --persistence none --minutes 3

A private `redis-server` (its own port and directory), two server processes and the
syncer run on loopback against a database of their own, reached through a TCP proxy
that the nemesis can cut. Players submit scores through both servers, readers fetch
the top 10, and WebSocket and SSE clients follow the board. Every fault-interval one
fault, in turn:

- `syncer kill -9`, restarted at once (as a supervisor would);
- `redis SIGSTOP` for 2 s;
- `postgres cut`: every connection to PostgreSQL dropped and refused for 5 s (what a
  restart looks like to the service; the shared server itself is left alone; the
  proxy is the test suite's own, `tests/pg_proxy.py`);
- `redis emptied`: with `--persistence always` Redis is killed with -9 and restarted
  from its AOF; with `none`, FLUSHALL (the data is gone, as after a restart without
  persistence);
- `server kill -9` of one of the two servers, restarted at once.

Each client operation is logged as ok, failed or unknown (no answer: retried with the
same action token and body, which replays the first answer, so few stay unknown). At
the end the load stops, the syncer drains, and the run checks, for every player: the
sum of increases answered 200 equals the board and PostgreSQL (exactly with AOF
`always`; without persistence the points accepted but not yet persisted when Redis
was emptied are lost, and reported), no event id twice, and every feed client got a
board after the last fault. It prints per fault the seconds until updates were
accepted again, writes bench/SOAK.md, and exits non-zero when the invariant fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import redis
import websockets

from bench import services
from scoreboard.storage.redis_client import as_text, stream_position
from tests.pg_proxy import CuttableProxy

HERE = Path(__file__).resolve().parent
FAULTS = ("syncer kill -9", "redis SIGSTOP", "postgres cut", "redis emptied", "server kill -9")
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Process:
    """A child process that can be killed with -9 and started again."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name, self.args, self.env, self.cwd = name, args, env, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.cwd / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def signal(self, signum: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Ledger:
    accepted: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    failed: Counter[int] = field(default_factory=Counter)
    unknown: int = 0
    accepted_at: list[float] = field(default_factory=list)  # monotonic time of each 200


@dataclass
class FeedClient:
    kind: str
    messages: int = 0
    last_message: float = 0.0
    reconnects: int = 0


@dataclass
class Soak:
    args: argparse.Namespace
    workdir: Path
    redis_port: int
    env: dict[str, str]
    redis_server: Process
    servers: list[Process]
    server_urls: list[str]
    syncer: Process
    proxy: CuttableProxy
    prefix: str
    database_url: str
    ledger: Ledger = field(default_factory=Ledger)
    players: list[dict[str, Any]] = field(default_factory=list)
    feeds: list[FeedClient] = field(default_factory=list)
    recoveries: list[tuple[str, float, float]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    last_fault_end: float = 0.0

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port, socket_timeout=5)


def redis_args(port: int, directory: Path, persistence: str) -> list[str]:
    aof = ["--appendonly", "yes", "--appendfsync", "always"] if persistence == "always" else []
    return [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "no",
        *aof,
    ]


def wait_for_redis(port: int, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError), redis.Redis(port=port) as probe:
            if probe.ping():
                return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


async def wait_http(url: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=1) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{url}/health")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def play_once(soak: Soak, http: httpx.AsyncClient, player: dict[str, Any]) -> None:
    """One action: a token, then the update; a lost answer is retried with the same
    token and body (the service replays the first answer)."""
    auth = {"Authorization": f"Bearer {player['access_token']}"}
    try:
        issued = await http.post(
            "/v1/auth/action-token",
            json={"action_type": "game_completion", "session_id": "soak"},
            headers=auth,
        )
    except httpx.TransportError:
        return  # nothing was spent
    if issued.status_code != 200:
        soak.ledger.failed[issued.status_code] += 1
        return
    increase = random.randint(1, 40)
    headers = {**auth, "X-Action-Token": issued.json()["data"]["action_token"]}
    for _ in range(20):
        try:
            answer = await http.post(
                "/v1/scores/update", json={"score_increase": increase}, headers=headers
            )
        except httpx.TransportError:
            await asyncio.sleep(0.25)
            continue
        if answer.status_code == 503:  # nothing applied: Redis or the board is away
            await asyncio.sleep(0.1)
            continue
        if answer.status_code == 200:
            soak.ledger.ok += 1
            soak.ledger.accepted[player["user_id"]] += increase
            soak.ledger.accepted_at.append(time.monotonic())
        else:
            soak.ledger.failed[answer.status_code] += 1
        return
    soak.ledger.unknown += 1


async def player_loop(soak: Soak, index: int) -> None:
    url = soak.server_urls[index % len(soak.server_urls)]
    async with httpx.AsyncClient(base_url=url, timeout=3) as http:
        while not soak.stop.is_set():
            player = soak.players[random.randrange(len(soak.players))]
            await play_once(soak, http, player)
            await asyncio.sleep(0.02)


async def reader_loop(soak: Soak, index: int) -> None:
    url = soak.server_urls[index % len(soak.server_urls)]
    async with httpx.AsyncClient(base_url=url, timeout=3) as http:
        while not soak.stop.is_set():
            with contextlib.suppress(httpx.TransportError):
                await http.get("/v1/leaderboard/top10")
            await asyncio.sleep(0.05)


async def ws_loop(soak: Soak, client: FeedClient, index: int) -> None:
    base = soak.server_urls[index % len(soak.server_urls)].replace("http", "ws")
    token = soak.players[index]["access_token"]
    while not soak.stop.is_set():
        try:
            async with websockets.connect(f"{base}/ws/leaderboard?token={token}") as ws:
                await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
                async for raw in ws:
                    if json.loads(raw).get("type") == "leaderboard_update":
                        client.messages += 1
                        client.last_message = time.monotonic()
                    if soak.stop.is_set():
                        return
        except (OSError, websockets.WebSocketException):
            pass
        client.reconnects += 1
        await asyncio.sleep(0.5)


async def sse_loop(soak: Soak, client: FeedClient, index: int) -> None:
    url = soak.server_urls[index % len(soak.server_urls)]
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(5, read=30)) as http:
        while not soak.stop.is_set():
            try:
                async with http.stream("GET", "/sse/leaderboard") as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("data:"):
                            client.messages += 1
                            client.last_message = time.monotonic()
                        if soak.stop.is_set():
                            return
            except httpx.HTTPError:
                pass
            client.reconnects += 1
            await asyncio.sleep(0.5)


async def probe_recovery(soak: Soak, started: float, within: float = 60.0) -> float:
    """Seconds from the end of the fault to the first update accepted after it."""
    deadline = started + within
    while time.monotonic() < deadline:
        after = [t for t in soak.ledger.accepted_at if t > started]
        if after:
            return after[0] - started
        await asyncio.sleep(0.05)
    return float("inf")


async def inject(soak: Soak, fault: str) -> None:
    if fault == "syncer kill -9":
        soak.syncer.kill()
        soak.syncer.start()
    elif fault == "redis SIGSTOP":
        soak.redis_server.signal(signal.SIGSTOP)
        await asyncio.sleep(2)
        soak.redis_server.signal(signal.SIGCONT)
    elif fault == "postgres cut":
        await soak.proxy.cut()
        await asyncio.sleep(5)
        await soak.proxy.restore()
    elif fault == "redis emptied":
        if soak.args.persistence == "always":
            soak.redis_server.kill()
            soak.redis_server.start()
            await asyncio.to_thread(wait_for_redis, soak.redis_port)
        else:
            soak.redis().flushall()
    elif fault == "server kill -9":
        victim = soak.servers[len(soak.recoveries) % len(soak.servers)]
        victim.kill()
        victim.start()


async def nemesis(soak: Soak) -> None:
    deadline = time.monotonic() + soak.args.seconds
    faults = 0
    while time.monotonic() + soak.args.fault_every <= deadline:
        await asyncio.sleep(soak.args.fault_every)
        fault = FAULTS[faults % len(FAULTS)]
        faults += 1
        started = time.monotonic()
        print(f"soak: {fault}", flush=True)
        await inject(soak, fault)
        ended = soak.last_fault_end = time.monotonic()
        recovered = await probe_recovery(soak, ended)
        soak.recoveries.append((fault, ended - started, recovered))
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))


async def register_players(soak: Soak, count: int) -> None:
    async with httpx.AsyncClient(base_url=soak.server_urls[0], timeout=10) as http:
        for _ in range(count):
            name = f"soak{uuid.uuid4().hex[:10]}"
            body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
            created = await http.post("/v1/auth/register", json=body)
            created.raise_for_status()
            tokens = await http.post(
                "/v1/auth/login", json={"username": name, "password": PASSWORD}
            )
            tokens.raise_for_status()
            soak.players.append({**created.json()["data"], **tokens.json()["data"]})


async def drained(soak: Soak, within: float = 120.0) -> None:
    from scoreboard.storage.keys import Keys

    stream = Keys(soak.prefix).events()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError):
            client = soak.redis()
            groups = client.xinfo_groups(stream) if client.exists(stream) else []
            group = next((g for g in groups if g["name"] == b"sync"), None)
            last = client.xinfo_stream(stream)["last-generated-id"] if group else None
            if group is not None and group["pending"] == 0:
                delivered = group["last-delivered-id"]
                if stream_position(as_text(delivered)) >= stream_position(as_text(last)):
                    return
        await asyncio.sleep(0.5)
    raise RuntimeError("the syncer did not drain the stream")


async def check(soak: Soak) -> dict[str, Any]:
    """Told vs board vs PostgreSQL, per player, once everything has settled."""
    from scoreboard.storage.keys import Keys

    keys = Keys(soak.prefix)
    told = {user: points for user, points in soak.ledger.accepted.items() if points}
    deadline = time.monotonic() + 30
    while True:
        members = soak.redis().zrange(keys.leaderboard(), 0, -1, withscores=True)
        board = {m.decode().partition(":")[2]: int(s) for m, s in members}
        conn = await asyncpg.connect(soak.database_url)
        try:
            rows = await conn.fetch(
                "SELECT u.id::text AS id, u.current_score, (SELECT coalesce(sum(score_change),"
                " 0) FROM scores s WHERE s.user_id = u.id) AS summed FROM users u"
            )
            duplicates = await conn.fetchval(
                "SELECT count(*) FROM (SELECT event_id FROM scores GROUP BY event_id"
                " HAVING count(*) > 1) d"
            )
        finally:
            await conn.close()
        pg = {r["id"]: r["current_score"] for r in rows if r["current_score"]}
        summed = {r["id"]: int(r["summed"]) for r in rows if r["summed"]}
        if (board == pg == summed) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    lost = sum(told.values()) - sum(summed.values())
    over = {u: summed.get(u, 0) - p for u, p in told.items() if summed.get(u, 0) > p}
    exact = board == pg == summed == told
    consistent = board == pg == summed and duplicates == 0 and not over
    if soak.args.persistence == "always":
        passed = exact and duplicates == 0
    else:
        passed = consistent and lost >= 0
    return {
        "players": len(told),
        "points_told": sum(told.values()),
        "points_board": sum(board.values()),
        "points_postgres": sum(summed.values()),
        "points_lost": lost,
        "players_over": len(over),
        "duplicate_event_ids": duplicates,
        "board_equals_postgres": board == pg == summed,
        "exact": exact,
        "passed": passed,
    }


def feed_check(soak: Soak) -> dict[str, Any]:
    resumed = [c.last_message > soak.last_fault_end for c in soak.feeds]
    return {
        "clients": len(soak.feeds),
        "resumed_after_last_fault": sum(resumed),
        "messages": [c.messages for c in soak.feeds],
        "reconnects": [c.reconnects for c in soak.feeds],
        "passed": all(resumed),
    }


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    admin_dsn = services.admin_dsn()
    database = f"scoreboard_soak_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    parts = urlsplit(admin_dsn)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    user = parts.username or "postgres"
    via_proxy = urlunsplit(
        parts._replace(netloc=f"{user}@127.0.0.1:{proxy.port}", path=f"/{database}")
    )
    direct = urlunsplit(parts._replace(path=f"/{database}"))
    redis_port = free_port()
    (workdir / "redis").mkdir()
    redis_server = Process(
        "redis",
        redis_args(redis_port, workdir / "redis", args.persistence),
        dict(os.environ),
        workdir,
    )
    redis_server.start()
    await asyncio.to_thread(wait_for_redis, redis_port)
    prefix = f"soak{uuid.uuid4().hex[:6]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        DATABASE_URL=via_proxy,
        JWT_SECRET="soak-access-secret-0123456789abcdef",
        JWT_REFRESH_SECRET="soak-refresh-secret-0123456789abcdef",
        SCOREBOARD_REDIS_PREFIX=prefix,
        SCOREBOARD_BCRYPT_ROUNDS="4",
        SCOREBOARD_ANTICHEAT_MODE="off",
        SCOREBOARD_RATE_LIMIT_SCORE_UPDATE="100000/minute",
        SCOREBOARD_RATE_LIMIT_ACTION_TOKEN="100000/minute",
        SCOREBOARD_RATE_LIMIT_LEADERBOARD="100000/minute",
        SCOREBOARD_RATE_LIMIT_LOGIN="100000/minute",
        SCOREBOARD_SYNC_CONSUMER="soak",
        SCOREBOARD_RECONCILE_INTERVAL_MS="10000",
    )
    command = [sys.executable, "-m", "scoreboard"]
    ports = [free_port(), free_port()]
    servers = [
        Process(f"server{i}", [*command, "serve", "--port", str(port)], env, workdir)
        for i, port in enumerate(ports)
    ]
    syncer = Process("syncer", [*command, "sync"], env, workdir)
    soak = Soak(
        args,
        workdir,
        redis_port,
        env,
        redis_server,
        servers,
        [f"http://127.0.0.1:{port}" for port in ports],
        syncer,
        proxy,
        prefix,
        direct,
    )
    try:
        for server in servers:
            server.start()
        for url in soak.server_urls:
            await wait_http(url)
        syncer.start()
        await register_players(soak, args.players)
        soak.feeds = [FeedClient("ws") for _ in range(args.feeds)]
        soak.feeds += [FeedClient("sse") for _ in range(args.feeds)]
        tasks = [asyncio.create_task(player_loop(soak, i)) for i in range(args.writers)]
        tasks += [asyncio.create_task(reader_loop(soak, i)) for i in range(2)]
        for i, client in enumerate(soak.feeds):
            loop = ws_loop if client.kind == "ws" else sse_loop
            tasks.append(asyncio.create_task(loop(soak, client, i)))
        await nemesis(soak)
        await asyncio.sleep(2)  # let feeds see the board after the last fault
        soak.stop.set()
        await asyncio.wait(tasks, timeout=15)
        for task in tasks:
            task.cancel()
        await drained(soak)
        result = await check(soak)
        return {
            "persistence": args.persistence,
            "seconds": args.seconds,
            "fault_every": args.fault_every,
            "operations": {
                "ok": soak.ledger.ok,
                "failed": dict(soak.ledger.failed),
                "unknown": soak.ledger.unknown,
            },
            "recoveries": soak.recoveries,
            "invariant": result,
            "feeds": feed_check(soak),
        }
    finally:
        for process in (*servers, syncer, redis_server):
            process.stop()
        await proxy.cut()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def report(result: dict[str, Any]) -> str:
    inv, feeds, ops = result["invariant"], result["feeds"], result["operations"]
    verdict = "passed" if inv["passed"] else "FAILED"
    lines = [
        "# Soak run",
        "",
        f"{result['seconds']:.0f} s of load, a fault every {result['fault_every']:.0f} s,"
        f" Redis persistence `{result['persistence']}`; two servers, one syncer.",
        "",
        "| fault | the fault lasted (s) | updates accepted again after it (s) |",
        "| --- | ---: | ---: |",
        *(
            f"| {fault} | {lasted:.2f} | {seconds:.2f} |"
            for fault, lasted, seconds in result["recoveries"]
        ),
        "",
        "A fault's duration includes bringing back what it killed (a Redis restarted from"
        " its AOF, a syncer or server started again).",
        "",
        f"Operations: {ops['ok']} updates accepted, refused by status {ops['failed']},"
        f" {ops['unknown']} without an answer.",
        "",
        f"Invariant: {inv['players']} players; points told {inv['points_told']}, on the board"
        f" {inv['points_board']}, in PostgreSQL {inv['points_postgres']}; lost"
        f" {inv['points_lost']}; players above what they were told {inv['players_over']};"
        f" duplicate event ids {inv['duplicate_event_ids']}; board equals PostgreSQL:"
        f" {inv['board_equals_postgres']}; exact: {inv['exact']}. **{verdict}**.",
        "",
        f"Feeds: {feeds['resumed_after_last_fault']} of {feeds['clients']} clients received a"
        f" board after the last fault; messages {feeds['messages']}, reconnects"
        f" {feeds['reconnects']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up children on a timeout
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--fault-every", type=float, default=30.0)
    parser.add_argument("--persistence", choices=("always", "none"), default="always")
    parser.add_argument("--players", type=int, default=30)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--feeds", type=int, default=3)
    parser.add_argument("--short", action="store_true", help="the CI version: 5 faults, 4 s apart")
    parser.add_argument("--out", type=Path, default=HERE / "SOAK.md")
    args = parser.parse_args()
    args.seconds = args.minutes * 60
    if args.short:
        # the first four faults last about 8 s in all: the fifth starts at about 28 s
        args.seconds, args.fault_every, args.players, args.writers = 30.0, 4.0, 10, 4
    with tempfile.TemporaryDirectory(prefix="scoreboard-soak-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    text = report(result)
    print(text)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    passed = result["invariant"]["passed"] and result["feeds"]["passed"]
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
