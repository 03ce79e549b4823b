"""What tracing costs a score update: off, on with every trace sampled, and on with one
in a hundred, in one run.

    .venv/bin/python -m bench.tracing [--updates 1500] [--rounds 3]

Each mode runs in a process of its own (tracing is set up once per process, as in a
server): the app in that process over ASGI, on the Redis of REDIS_URL under a key
prefix of its own and a database of its own; a player asks for an action token and
spends it on an update, `--updates` times a round. On, spans are exported over OTLP/HTTP
to a receiver in this process that answers and keeps nothing, so the exporter's thread
does its whole work. The measure is the app process's CPU per update (the token's
request and the update's: what a player's round costs the server, spans and their
export included), the median over the rounds. Writes bench/TRACING.md and
bench/tracing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench import services
from bench.run import HERE

MODES: dict[str, dict[str, str]] = {
    "off": {},
    "on, every trace sampled": {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
    },
    "on, 1 trace in 100 sampled": {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
    },
}


@contextmanager
def discarding_receiver() -> Iterator[str]:
    """An OTLP/HTTP endpoint that answers every export with success and keeps nothing."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _updates(redis_url: str, admin_dsn: str, updates: int, rounds: int) -> list[float]:
    """In this process (tracing as its environment says): CPU µs per token + update."""
    from bench.in_process import app_client, signed_in

    costs = []
    async with app_client(redis_url, admin_dsn) as (http, _):
        headers = await signed_in(http, "tr")

        async def play(count: int) -> float:
            started = time.process_time()
            for _ in range(count):
                token = await http.post(
                    "/v1/auth/action-token",
                    json={"action_type": "game_completion", "session_id": "s1"},
                    headers=headers,
                )
                update = await http.post(
                    "/v1/scores/update",
                    json={"score_increase": 1},
                    headers={**headers, "X-Action-Token": token.json()["data"]["action_token"]},
                )
                assert update.status_code == 200, update.text
            return (time.process_time() - started) / count * 1e6

        await play(min(200, updates))  # warm up
        for _ in range(rounds):
            costs.append(await play(updates))
    from scoreboard.core import tracing

    tracing.shutdown()
    return costs


def hooks_when_off(loops: int = 200_000) -> float:
    """µs per update of the tracing hooks an update passes when tracing is off (this
    process's tracing is off): its trace context for the stream event, and the span
    around the score script."""
    import timeit

    from scoreboard.core import tracing

    assert not tracing.enabled()

    def one_update() -> None:
        tracing.traceparent()
        with tracing.span("score script", {"scoreboard.board": "global"}):
            pass

    return min(timeit.repeat(one_update, number=loops, repeat=5)) / loops * 1e6


def measure(
    redis_url: str, admin_dsn: str, updates: int, rounds: int
) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with discarding_receiver() as endpoint:
        for mode, variables in MODES.items():
            env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
            env.update(variables, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.tracing",
                    "--in-process",
                    "--updates",
                    str(updates),
                    "--rounds",
                    str(rounds),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            costs = json.loads(run.stdout.strip().splitlines()[-1])
            results[mode] = {"us_per_update": statistics.median(costs), "rounds": len(costs)}
    return results


def write_report(
    args: argparse.Namespace, results: dict[str, dict[str, float]], hooks_us: float
) -> str:
    base = results["off"]["us_per_update"]
    lines = [
        "# What tracing costs a score update",
        "",
        f"`python -m bench.tracing --updates {args.updates} --rounds {args.rounds}`, one run:"
        " each mode in a process of its own, the app over ASGI; CPU of that process per"
        " update (the action token's request and the update's, with the spans' export over"
        f" OTLP/HTTP included), medians of {args.rounds} rounds of {args.updates} updates.",
        "",
        "Off is the default: nothing of OpenTelemetry is imported, and each hook in the"
        " code is a constant (a shared no-op context, an empty trace context). The hooks"
        f" an update passes cost {hooks_us:.2f} µs when off (timed alone), {hooks_us / base:.4%}"
        " of an update off: nil within the noise of the rows below.",
        "",
        "| tracing | µs per update | ratio to off |",
        "| --- | ---: | ---: |",
        *(
            f"| {mode} | {result['us_per_update']:.0f} | {result['us_per_update'] / base:.2f} |"
            for mode, result in results.items()
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    redis_url = services.redis_url()
    admin_dsn = services.admin_dsn()
    if args.in_process:
        costs = asyncio.run(_updates(redis_url, admin_dsn, args.updates, args.rounds))
        print(json.dumps(costs))
        return 0
    results = measure(redis_url, admin_dsn, args.updates, args.rounds)
    hooks_us = hooks_when_off()
    report = write_report(args, results, hooks_us)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "TRACING.md").write_text(report)
    (args.out / "tracing.json").write_text(
        json.dumps({"modes": results, "hooks_off_us_per_update": hooks_us}, indent=2) + "\n"
    )
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
