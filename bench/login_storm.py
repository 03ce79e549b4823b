"""The spec's load scenario with Artillery, at the default bcrypt cost, in two modes:

- `spec`: as the spec writes it, every arrival logs in, asks for an action token and
  submits a score (10, then 50, then 100 arrivals a second);
- `client`: as a real client plays, one login per arrival, then many actions, the
  access token refreshed instead of logging in again.

While each runs, `/health` and `/leaderboard/top10` are probed every 100 ms, and once
before (quiet), to show what a login storm does to cheap routes. Writes
bench/STORM.md and bench/storm.json.

    python -m bench.login_storm [--seconds 20,40,20] [--quick]

Artillery 2 is installed on first use into ~/.cache/scoreboard/artillery (`npm install
--ignore-scripts artillery@2`, kept for later runs), or taken from ARTILLERY.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import bcrypt
import httpx

from bench import services
from bench.run import Deployment
from bench.sync_drain import with_database

HERE = Path(__file__).resolve().parent
PASSWORD = "storm password 1"
PROBES = ("/health", "/v1/leaderboard/top10")
PROBE_SECONDS = 0.02
QUIET_SECONDS = 5


def artillery() -> str:
    """The Artillery command: ARTILLERY, or one installed under ~/.cache (kept for later
    runs). The install goes to a side directory first and is moved into place only once
    `artillery version` runs, so an interrupted install is never taken for a good one."""
    given = os.environ.get("ARTILLERY")
    if given:
        return given
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    home = cache / "scoreboard" / "artillery"
    local = home / "node_modules" / ".bin" / "artillery"
    if local.exists():
        return str(local)
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("Artillery needs Node.js and npm (apt install nodejs npm)")
    home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="artillery-", dir=home.parent))
    try:
        subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(staging),
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--loglevel=error",
                "artillery@2",
            ],
            check=True,
        )
        staged = staging / "node_modules" / ".bin" / "artillery"
        subprocess.run([str(staged), "version"], check=True, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(local)


async def seed_users(dsn: str, count: int, path: Path) -> None:
    """Accounts with one cost-12 hash of the same password (hashing each would take
    minutes), straight into PostgreSQL."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(12)).decode()
    names = [f"storm{uuid.uuid4().hex[:12]}" for _ in range(count)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO users (username, username_key, email, password_hash)"
            " VALUES ($1::text, $1::text, $1::text || '@example.com', $2)",
            [(name, hashed) for name in names],
        )
    finally:
        await conn.close()
    path.write_text("".join(f"{name},{PASSWORD}\n" for name in names))


async def probe(url: str, stop: asyncio.Event) -> dict[str, list[float]]:
    """Latency (ms) of the cheap routes every PROBE_SECONDS until `stop`."""
    seen: dict[str, list[float]] = {route: [] for route in PROBES}
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while not stop.is_set():
            for route in PROBES:
                started = time.perf_counter()
                with contextlib.suppress(httpx.HTTPError):
                    await http.get(route)
                seen[route].append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(PROBE_SECONDS)
    return seen


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50": values[0] if values else 0.0, "p99": values[0] if values else 0.0}
    cuts = statistics.quantiles(values, n=100)
    return {"p50": round(statistics.median(values), 1), "p99": round(cuts[98], 1)}


def summarise_artillery(report: dict[str, Any]) -> dict[str, Any]:
    aggregate = report["aggregate"]
    counters: dict[str, int] = aggregate.get("counters", {})
    summaries: dict[str, Any] = aggregate.get("summaries", {})
    prefix = "plugins.metrics-by-endpoint.response_time."
    return {
        "flows": counters.get("vusers.created", 0),
        "completed": counters.get("vusers.completed", 0),
        "failed": counters.get("vusers.failed", 0),
        "codes": {
            k.rpartition(".")[2]: v for k, v in counters.items() if k.startswith("http.codes.")
        },
        "errors": {k.partition(".")[2]: v for k, v in counters.items() if k.startswith("errors.")},
        "routes": {
            name[len(prefix) :]: {"p50": s.get("median"), "p95": s.get("p95"), "p99": s.get("p99")}
            for name, s in summaries.items()
            if name.startswith(prefix)
        },
    }


async def run_mode(
    mode: str, deployment: Deployment, phases: list[int], users_csv: Path, workdir: Path
) -> dict[str, Any]:
    stop = asyncio.Event()
    quiet_task = asyncio.create_task(probe(deployment.url, stop))
    await asyncio.sleep(QUIET_SECONDS)
    stop.set()
    quiet = await quiet_task
    stop = asyncio.Event()
    storm_task = asyncio.create_task(probe(deployment.url, stop))
    report_path = workdir / f"{mode}.json"
    env = {
        **os.environ,
        "TARGET": deployment.url,
        "PHASE_1": str(phases[0]),
        "PHASE_2": str(phases[1]),
        "PHASE_3": str(phases[2]),
        # Artillery reads the payload relative to the scenario: both sit in `workdir`
        "USERS_CSV": users_csv.name,
    }
    scenario = workdir / f"{mode}-scenario.yml"
    for name in (f"{mode}-scenario.yml", "storm-processor.js"):
        shutil.copyfile(HERE / "artillery" / name, workdir / name)
    command = [artillery(), "run", "--output", str(report_path), str(scenario)]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await process.communicate()
    stop.set()
    storm = await storm_task
    if process.returncode != 0:
        raise RuntimeError(f"artillery failed: {stderr.decode()[-2000:]}")
    result = summarise_artillery(json.loads(report_path.read_text()))
    result["cheap_routes"] = {
        route: {"quiet": percentiles(quiet[route]), "storm": percentiles(storm[route])}
        for route in PROBES
    }
    return result


async def main_async(phases: list[int], users: int, modes: list[str]) -> dict[str, Any]:
    redis_url = services.redis_url()
    admin_dsn = services.admin_dsn()
    results: dict[str, Any] = {"phases_seconds": phases, "bcrypt_cost": 12}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for mode in modes:
            deployment = Deployment(
                redis_url,
                admin_dsn,
                1,
                workdir,
                extra_env={"SCOREBOARD_BCRYPT_ROUNDS": "12", "SCOREBOARD_ANTICHEAT_MODE": "off"},
            )
            await deployment.start()
            try:
                csv = workdir / f"{mode}-users.csv"
                await seed_users(with_database(admin_dsn, deployment.database), users, csv)
                results[mode] = await run_mode(mode, deployment, phases, csv, workdir)
            finally:
                await deployment.stop()
    return results


def write_report(results: dict[str, Any], out: Path) -> None:
    lines = [
        "# Login storm: the spec's scenario with Artillery",
        "",
        f"bcrypt cost {results['bcrypt_cost']}; phases of {results['phases_seconds']} seconds"
        " at 10, 50 and 100 arrivals a second (`spec`: a login per flow) or 1, 2 and 3"
        " (`client`: one login per session, retried after `Retry-After` when shed, then 20"
        " actions with one refresh); one server process; Artillery's 10 s timeout.",
        "",
        "| mode | flows | completed | failed | answers by status | errors |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    modes = [mode for mode in ("spec", "client") if mode in results]
    for mode in modes:
        r = results[mode]
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items()))
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r["errors"].items())) or "none"
        lines.append(
            f"| {mode} | {r['flows']} | {r['completed']} | {r['failed']} | {codes} | {errors} |"
        )
    lines += [
        "",
        "| mode | route | p50 ms | p95 ms | p99 ms |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for mode in modes:
        for route, s in sorted(results[mode]["routes"].items()):
            lines.append(f"| {mode} | {route} | {s['p50']} | {s['p95']} | {s['p99']} |")
    lines += [
        "",
        f"Cheap routes probed every {PROBE_SECONDS * 1000:.0f} ms (ms): quiet"
        f" ({QUIET_SECONDS} s before the run) and during it.",
        "",
        "| mode | route | quiet p50 | quiet p99 | storm p50 | storm p99 |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for mode in modes:
        for route, s in results[mode]["cheap_routes"].items():
            lines.append(
                f"| {mode} | {route} | {s['quiet']['p50']} | {s['quiet']['p99']} |"
                f" {s['storm']['p50']} | {s['storm']['p99']} |"
            )
    out.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", default="20,40,20", help="the three phases' lengths")
    parser.add_argument("--quick", action="store_true", help="phases of 2, 4 and 2 seconds")
    parser.add_argument("--users", type=int, default=6000)
    parser.add_argument("--modes", default="spec,client", help="spec, client or both")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    phases = [2, 4, 2] if args.quick else [int(part) for part in args.seconds.split(",")]
    modes = [mode for mode in args.modes.split(",") if mode]
    results = asyncio.run(main_async(phases, args.users, modes))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "storm.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(results, args.out / "STORM.md")
    print((args.out / "STORM.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
