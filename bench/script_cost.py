"""The score update's script alone: its cost per call in Redis, and where inside it the
time goes.

    .venv/bin/python -m bench.script_cost [--calls 4000] [--repeats 5] [--out bench]

Starts a `redis-server` of its own (a free loopback port, nothing on disk), so that
`INFO commandstats` counts only these calls. For each case (a board with no period or
the three, the anti-cheat judge off or enforcing), it fills a board of 1,000 players,
issues one action token per call through the token script, builds each update's KEYS
and ARGV with the service's own wrapper, and sends them as EVALSHA in pipelines of 64,
the way a loaded server's auto-pipelining does. The cost is Redis's own: microseconds
per EVALSHA (the median of the repeats).

Then the stages: the same calls against copies of the script that return before each
numbered step (`-- N. ...` in `lua/submit_score.lua`), so each step's share is the
difference between two cut points. The Redis commands a full call makes are listed
with their own microseconds per call; what the script costs beyond them is the Lua
interpreter's.

    .venv/bin/python -m bench.script_cost --instructions

counts instead of timing: Redis runs under valgrind's callgrind and the report gives
the machine instructions each EVALSHA executes, in all and inside the Redis commands
it calls. On a shared machine a call's time swings by a third from one run to the
next; its instruction count does not, so before/after comparisons of the script are
made with this (needs valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from scoreboard.core.periods import period_at
from scoreboard.core.settings import Settings
from scoreboard.scoring.updates import fingerprint, policy_from
from scoreboard.storage.keys import DEFAULT_BOARD, Keys
from scoreboard.storage.scripts import ScoreSubmission, Scripts, load_sources

HERE = Path(__file__).resolve().parent
PIPELINE = 64
PERIODS = ("daily", "weekly", "monthly")
_STEP_RE = re.compile(r"^-- (\d+)\. (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Case:
    name: str
    periods: tuple[str, ...]
    anticheat_mode: str
    devices: bool = False  # each player's sessions opened from a registered device


CASES = (
    Case("no period, judge off", (), "off"),
    Case("no period, judge on", (), "enforce"),
    Case("no period, judge on, devices", (), "enforce", devices=True),
    Case("three periods, judge off", PERIODS, "off"),
    Case("three periods, judge on", PERIODS, "enforce"),
)


class _Recorder(Scripts):
    """The service's wrappers, with the update's call kept instead of sent."""

    recorded: list[tuple[list[str], list[Any]]]

    async def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if name != "submit_score":
            return await super()._call(name, keys, args)
        self.recorded.append((keys, args))
        return [b"OK", b"0", 1, b"0", 0, b"0-1", b"0.000", 0, 1, 1, 1, b"", 1, b"e", b"", b"[]"]


def stage_sources(source: str) -> list[tuple[str, str]]:
    """(label, source) for the script cut before each numbered step, then whole."""
    cuts = []
    for match in _STEP_RE.finditer(source):
        cut = source[: match.start()] + "do return { 'CUT' } end\n" + source[match.start() :]
        cuts.append((f"before {match[1]}. {match[2]}", cut))
    return [*cuts, ("whole script", source)]


async def _prepared_calls(
    url: str, case: Case, calls: int, players: int
) -> tuple[Keys, list[tuple[list[str], list[Any]]]]:
    """A ready board of `players`, and `calls` updates (one fresh token each) as the
    service would send them."""
    client = aioredis.Redis.from_url(url)
    try:
        keys = Keys(f"sc{uuid.uuid4().hex[:8]}")
        board = keys.board(DEFAULT_BOARD)
        settings = Settings.from_env({"SCOREBOARD_ANTICHEAT_MODE": case.anticheat_mode})
        policy = replace(
            policy_from(settings), rate_rule=replace(settings.rate_limit_score_update, limit=10**9)
        )
        token_rule = replace(settings.rate_limit_action_token, limit=10**9)
        await client.hset(board.state, mapping={"epoch": "e1", "seq": 0, "players": 0})
        recorder = _Recorder(client)
        recorder.recorded = []
        users = [str(uuid.uuid4()) for _ in range(players)]
        now_ms = int(time.time() * 1000)
        semaphore = asyncio.Semaphore(PIPELINE)

        token_hashes = [hashlib.sha256(secrets.token_bytes(16)).hexdigest() for _ in range(calls)]

        def device(index: int) -> str:
            return f"{index % players:032x}" if case.devices else ""

        async def issue(index: int) -> None:
            async with semaphore:
                await recorder.issue_action_token(
                    board,
                    token_rule,
                    user_id=users[index % players],
                    token_hash=token_hashes[index],
                    session_id="s1",
                    action_type="game_completion",
                    max_increase=100,
                    ttl_ms=600_000,
                    max_open=10_000,
                    device=device(index),
                )

        await asyncio.gather(*(issue(i) for i in range(calls)))
        for index in range(calls):  # recorded in order: each player's rounds in turn
            # each player's next update a minute later by the script's clock, so that the
            # judge sees play at a human pace and approves it
            offset_us = (index // players) * 60_000_000
            periods = tuple(period_at(kind, now_ms + offset_us // 1000) for kind in case.periods)
            increase = 1 + index % 50
            submission = ScoreSubmission(
                user_id=users[index % players],
                username=f"player-{index % players}",
                session_id=None,
                action_type=None,
                increase=increase,
                token_hash=token_hashes[index],
                claimed_duration_us=30_000_000,
                event_id=str(uuid.uuid4()),
                ip="127.0.0.1",
                user_agent="script-cost",
                action_data_json='{"time_taken":30.0}',
                fingerprint=fingerprint(increase, None, None, '{"time_taken":30.0}'),
                claimed_level=None,
                device=device(index),
            )
            await recorder.submit_score(
                board, submission, replace(policy, clock_offset_us=offset_us), periods
            )
        return keys, recorder.recorded
    finally:
        await client.aclose()


def _replay(
    client: redis.Redis, source: str, calls: list[tuple[list[str], list[Any]]]
) -> dict[str, Any]:
    # The Lua heap as a running service leaves it (every script of the service, and
    # this one): Lua's collector walks the whole heap, so each cut loaded before would
    # add to the cost of the next.
    client.script_flush()
    for other in load_sources().values():
        client.script_load(other)
    sha = client.script_load(source)
    client.config_resetstat()
    pipe = client.pipeline(transaction=False)
    statuses: Counter[str] = Counter()
    for index, (keys, args) in enumerate(calls, 1):
        pipe.evalsha(sha, len(keys), *keys, *args)
        if index % PIPELINE == 0 or index == len(calls):
            statuses.update(_status(reply) for reply in pipe.execute(raise_on_error=False))
    stats = client.info("commandstats")
    inner = {
        name.removeprefix("cmdstat_"): float(row["usec"]) / len(calls)
        for name, row in stats.items()
        if name not in ("cmdstat_evalsha", "cmdstat_config|resetstat")
    }
    return {
        "evalsha_us": float(stats["cmdstat_evalsha"]["usec_per_call"]),
        "inner": inner,
        "statuses": dict(statuses),
    }


def _status(reply: Any) -> str:
    if isinstance(reply, list) and reply:
        return reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    return type(reply).__name__


def _drop(client: redis.Redis, keys: Keys) -> None:
    for key in client.scan_iter(keys.pattern(), count=1000):
        client.unlink(key)


async def measure(url: str, calls: int, repeats: int, players: int) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    source = load_sources()["submit_score"]
    results: dict[str, Any] = {}
    for case in CASES:
        stages: dict[str, list[float]] = {label: [] for label, _ in stage_sources(source)}
        inner: dict[str, list[float]] = {}
        statuses: Counter[str] = Counter()
        for _ in range(repeats):
            for label, cut in stage_sources(source):
                keys, prepared = await _prepared_calls(url, case, calls, players)
                run = _replay(client, cut, prepared)
                stages[label].append(run["evalsha_us"])
                if label == "whole script":
                    statuses.update(run["statuses"])
                    for name, us in run["inner"].items():
                        inner.setdefault(name, []).append(us)
                _drop(client, keys)
        results[case.name] = {
            "stages": {label: statistics.median(v) for label, v in stages.items()},
            "inner": {name: statistics.median(v) for name, v in inner.items()},
            "statuses": dict(statuses),
        }
    client.close()
    return results


def write_report(results: dict[str, Any], calls: int, repeats: int) -> str:
    lines = [
        "# The score script alone",
        "",
        f"`python -m bench.script_cost`: Redis's own microseconds per EVALSHA of "
        f"`submit_score.lua`, {calls} calls per measurement in pipelines of {PIPELINE}, "
        f"median of {repeats}; a board of 1,000 players, a Redis of its own.",
        "",
        "| case | µs per update | Redis commands inside | Lua beyond them | answers |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for case, result in results.items():
        whole = result["stages"]["whole script"]
        inner = sum(result["inner"].values())
        answers = ", ".join(f"{k} {v}" for k, v in sorted(result["statuses"].items()))
        lines.append(f"| {case} | {whole:.1f} | {inner:.1f} | {whole - inner:.1f} | {answers} |")
    for case, result in results.items():
        lines += ["", f"## {case}: the cost up to each step", ""]
        lines += ["| cut | µs per call | the step before it |", "| --- | ---: | ---: |"]
        previous = 0.0
        for label, us in result["stages"].items():
            lines.append(f"| {label} | {us:.1f} | {us - previous:+.1f} |")
            previous = us
        lines += ["", "| command inside | µs per update |", "| --- | ---: |"]
        for name, us in sorted(result["inner"].items(), key=lambda item: -item[1]):
            if us >= 0.05:
                lines.append(f"| {name} | {us:.2f} |")
    return "\n".join(lines) + "\n"


def _callgrind(command: str, *args: str) -> str:
    return subprocess.run([command, *args], capture_output=True, text=True, check=True).stdout


async def count_instructions(url: str, calls: int, players: int, out: Path) -> dict[str, Any]:
    """Instructions per EVALSHA of the whole script, per case: callgrind collects only
    while the measured calls run (a warm-up of a fifth of them is not counted)."""
    client = redis.Redis.from_url(url)
    source = load_sources()["submit_score"]
    results: dict[str, Any] = {}
    for number, case in enumerate(CASES):
        keys, prepared = await _prepared_calls(url, case, calls, players)
        warm = len(prepared) // 5
        _replay(client, source, prepared[:warm])
        measured = prepared[warm:]
        sha = client.script_load(source)
        _callgrind("callgrind_control", "--zero")
        _callgrind("callgrind_control", "--instr=on")
        pipe = client.pipeline(transaction=False)
        for index, (call_keys, args) in enumerate(measured, 1):
            pipe.evalsha(sha, len(call_keys), *call_keys, *args)
            if index % PIPELINE == 0 or index == len(measured):
                pipe.execute(raise_on_error=False)
        _callgrind("callgrind_control", "--instr=off")
        _callgrind("callgrind_control", f"--dump=case{number}")
        _drop(client, keys)
        dumps = sorted(out.glob("callgrind.out*"), key=lambda path: path.stat().st_mtime)
        annotated = _callgrind("callgrind_annotate", "--inclusive=yes", str(dumps[-1]))
        counts = {}
        for line in annotated.splitlines():
            for name in ("evalShaCommand", "scriptCall"):
                if f":{name} [" in line:
                    counts[name] = int(line.split()[0].replace(",", "")) / len(measured)
        results[case.name] = {
            "instructions": counts.get("evalShaCommand", 0.0),
            "in_commands": counts.get("scriptCall", 0.0),
        }
    client.close()
    return results


def write_instructions(results: dict[str, Any], calls: int) -> str:
    lines = [
        "# The score script alone, in instructions",
        "",
        f"`python -m bench.script_cost --instructions`: machine instructions per EVALSHA "
        f"of `submit_score.lua` under callgrind, {calls - calls // 5} calls counted; a "
        "board of 1,000 players, a Redis of its own.",
        "",
        "| case | instructions per update | in the Redis commands | in Lua and the calls' glue |",
        "| --- | ---: | ---: | ---: |",
    ]
    for case, result in results.items():
        whole, inner = result["instructions"], result["in_commands"]
        lines.append(f"| {case} | {whole:,.0f} | {inner:,.0f} | {whole - inner:,.0f} |")
    return "\n".join(lines) + "\n"


def _private_redis(
    directory: Path, under_callgrind: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed: the measurement runs on a Redis of its own")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(directory),
    ]  # fmt: skip
    if under_callgrind:
        if shutil.which("valgrind") is None:
            raise SystemExit("--instructions needs valgrind")
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={directory}/callgrind.out", *command,
        ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 30
    while True:
        try:
            redis.Redis.from_url(url).ping()
            return process, url
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description="the score script's cost in Redis")
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--players", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--instructions", action="store_true", help="count, under callgrind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sbscript-") as tmp:
        process, url = _private_redis(Path(tmp), args.instructions)
        try:
            if args.instructions:
                counted = asyncio.run(count_instructions(url, args.calls, args.players, Path(tmp)))
                report = write_instructions(counted, args.calls)
            else:
                results = asyncio.run(measure(url, args.calls, args.repeats, args.players))
                report = write_report(results, args.calls, args.repeats)
        finally:
            process.terminate()
            process.wait(30)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "SCRIPT_INSTRUCTIONS.md" if args.instructions else "SCRIPT.md"
    (args.out / name).write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
