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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench import services
from bench.sync_drain import one_run
from tests.private_postgres import PrivatePostgres

HERE = Path(__file__).resolve().parent


async def measure(redis_url: str, events: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sbpgstat-") as tmp:
        postgres = PrivatePostgres(
            Path(tmp) / "pg",
            "shared_preload_libraries=pg_stat_statements",
            "fsync=on",
            "synchronous_commit=on",
        )
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
    redis_url = services.redis_url()
    result = asyncio.run(measure(redis_url, args.events))
    report = write_report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "PG_STATEMENTS.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
