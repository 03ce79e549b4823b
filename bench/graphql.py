"""A top 10 through GraphQL against the REST routes, in one run.

    .venv/bin/python -m bench.graphql [--requests 2000] [--rounds 3]

The app in this process (over ASGI, on the Redis of REDIS_URL under a key prefix of its
own and a database of its own), a board of 20 players; in turn within each round:
`GET /v1/leaderboard/top10` (the default board's cached top 10), `GET
/v1/boards/global/top10` (any board's), and `POST /graphql` asking
`leaderboard(limit: 10) { rank userId username score }`. The process's CPU per request,
medians over the rounds. Writes bench/GRAPHQL.md and bench/graphql.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench import services
from bench.in_process import app_client, signed_in
from bench.run import HERE

PLAYERS = 20
QUERY = '{ leaderboard(board: "global", period: "all", limit: 10) { rank userId username score } }'
READS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "REST /leaderboard/top10": ("GET", "/v1/leaderboard/top10", None),
    "REST /boards/global/top10": ("GET", "/v1/boards/global/top10", None),
    "GraphQL leaderboard(limit: 10)": ("POST", "/graphql", {"query": QUERY}),
}


async def _phase(http: httpx.AsyncClient, method: str, path: str, body: Any, count: int) -> float:
    """CPU µs of this process per request."""
    started = time.process_time()
    for _ in range(count):
        answer = await http.request(method, path, json=body)
        assert answer.status_code == 200, answer.text
    return (time.process_time() - started) / count * 1e6


async def measure(redis_url: str, admin_dsn: str, requests: int, rounds: int) -> dict[str, float]:
    costs: dict[str, list[float]] = {}
    async with app_client(redis_url, admin_dsn) as (http, _):
        for index in range(PLAYERS):
            headers = await signed_in(http, "gq")
            token = await http.post(
                "/v1/auth/action-token",
                json={"action_type": "game_completion", "session_id": "s1"},
                headers=headers,
            )
            update = await http.post(
                "/v1/scores/update",
                json={"score_increase": 1 + index},
                headers={**headers, "X-Action-Token": token.json()["data"]["action_token"]},
            )
            assert update.status_code == 200, update.text
        for method, path, body in READS.values():  # warm up
            await _phase(http, method, path, body, 100)
        for _ in range(rounds):
            for name, (method, path, body) in READS.items():
                costs.setdefault(name, []).append(await _phase(http, method, path, body, requests))
    return {name: statistics.median(values) for name, values in costs.items()}


def write_report(args: argparse.Namespace, costs: dict[str, float]) -> str:
    base = costs["REST /boards/global/top10"]
    lines = [
        "# A top 10 through GraphQL and through REST",
        "",
        f"`python -m bench.graphql --requests {args.requests} --rounds {args.rounds}`, one run:"
        f" the app in one process over ASGI, a board of {PLAYERS} players; this process's"
        f" CPU per request, medians of {args.rounds} rounds of {args.requests} requests.",
        "",
        "| read | µs per request | ratio to REST /boards/global/top10 |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {cost:.0f} | {cost / base:.2f} |" for name, cost in costs.items()),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    redis_url = services.redis_url()
    admin_dsn = services.admin_dsn()
    costs = asyncio.run(measure(redis_url, admin_dsn, args.requests, args.rounds))
    report = write_report(args, costs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "GRAPHQL.md").write_text(report)
    (args.out / "graphql.json").write_text(json.dumps({"us_per_request": costs}, indent=2) + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
