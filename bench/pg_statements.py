"""What PostgreSQL spends on each persisted event, statement by statement.

    .venv/bin/python -m bench.pg_statements [--events 50000] [--out bench]

Starts a PostgreSQL of its own (`initdb` as the `postgres` user, a free loopback port,
its own directory, `pg_stat_statements` loaded), has the syncer drain a backlog of
score events into it (bench/sync_drain.py's drain, on the Redis of REDIS_URL under a
key prefix of its own), and reports each statement's calls and execution time per
event from `pg_stat_statements`, with PostgreSQL's CPU per event read from /proc.
Writes bench/PG_STATEMENTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.sync_drain import one_run

HERE = Path(__file__).resolve().parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*command: str) -> list[str]:
    """Run as the `postgres` user when this is root (PostgreSQL refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


class PrivatePostgres:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        binary = PG_BIN if PG_BIN.is_dir() else Path(shutil.which("initdb") or "initdb").parent
        data = self.directory / "data"
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.directory.parent.chmod(0o755)  # a temporary directory is root's alone
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(
            _as_postgres(str(binary / "initdb"), "-D", str(data), "-U", "postgres",
                         "--auth=trust", "-E", "UTF8"),
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c shared_preload_libraries=pg_stat_statements "
            "-c fsync=on -c synchronous_commit=on"
        )
        subprocess.run(
            _as_postgres(str(binary / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                         "-l", str(self.directory / "log"), "start"),
            check=True, capture_output=True,
        )  # fmt: skip
        self.binary = binary

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(str(self.binary / "pg_ctl"), "-D", str(self.directory / "data"),
                         "-m", "immediate", "stop"),
            capture_output=True,
        )  # fmt: skip

    def cpu_seconds(self) -> float:
        """The server's CPU so far: the postmaster's own and that of every backend it
        has reaped (a closed connection's backend counts too)."""
        pid = int((self.directory / "data" / "postmaster.pid").read_text().splitlines()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime: fields 14-17 of stat(5), 11-14 after the name
        return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def measure(redis_url: str, events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sbpgstat-") as tmp:
        postgres = PrivatePostgres(Path(tmp) / "pg")
        postgres.start()
        try:
            admin = await asyncpg.connect(postgres.dsn)
            await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            await admin.execute("SELECT pg_stat_statements_reset()")
            cpu_before = postgres.cpu_seconds()
            started = time.perf_counter()
            rate = await one_run(redis_url, postgres.dsn, events)
            wall = time.perf_counter() - started
            await asyncio.sleep(0.5)  # the drain's backends exit and are reaped
            cpu = postgres.cpu_seconds() - cpu_before
            rows = await admin.fetch(
                "SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, calls,"
                " total_exec_time, rows FROM pg_stat_statements"
                " WHERE query NOT ILIKE '%pg_stat_statements%'"
                " ORDER BY total_exec_time DESC LIMIT 15"
            )
            await admin.close()
        finally:
            postgres.stop()
    return {
        "events": events,
        "events_per_second": rate,
        "wall_seconds": wall,
        "postgresql_cpu_us_per_event": cpu / events * 1e6,
        "statements": [
            {
                "query": row["query"][:160],
                "calls": row["calls"],
                "us_per_event": row["total_exec_time"] * 1000 / events,
                "rows": row["rows"],
            }
            for row in rows
        ],
    }


def write_report(result: dict[str, Any]) -> str:
    lines = [
        "# PostgreSQL per persisted event",
        "",
        f"`python -m bench.pg_statements`: the syncer drains {result['events']:,} score events "
        f"into a PostgreSQL of its own at {result['events_per_second']:,.0f} events/s. "
        f"PostgreSQL's CPU (every process of that server, migrations and seeding included): "
        f"{result['postgresql_cpu_us_per_event']:.1f} µs per event. Statements by execution "
        "time (`pg_stat_statements`), in µs per event:",
        "",
        "| µs per event | calls | rows | statement |",
        "| ---: | ---: | ---: | --- |",
    ]
    for statement in result["statements"]:
        query = statement["query"].replace("|", "\\|")
        lines.append(
            f"| {statement['us_per_event']:.2f} | {statement['calls']} | {statement['rows']} "
            f"| `{query}` |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="PostgreSQL's cost per persisted event")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    result = asyncio.run(measure(redis_url, args.events))
    report = write_report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "PG_STATEMENTS.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
