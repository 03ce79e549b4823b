"""What a game-server signature costs a score update, in one run.

    .venv/bin/python -m bench.signatures [--updates 2000] [--rounds 3]

Two measures. The check alone: the CPU of `signatures.check` per call, for HMAC-SHA256
and Ed25519. And the whole update: the app in this process (over ASGI, on the Redis of
REDIS_URL under a key prefix of its own and a database of its own), one player at a
time issuing a token and spending it, on a board without a key, one with an HMAC key
and one with an Ed25519 key, in turn within each round; the process's CPU per update
(token and update requests together; the signing, which the game server does, is
left out), medians over the rounds. Writes bench/SIGNATURES.md and bench/signatures.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench import services
from bench.in_process import app_client
from bench.run import HERE
from scoreboard.core.contract.requests import Signing
from scoreboard.scoring.signatures import check, signed_text

SECRET = "bench shared secret of the game server, 48 bytes"
Signer = Callable[[bytes], bytes]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _keys() -> dict[str, tuple[dict[str, str] | None, Signer | None]]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "none": (None, None),
        "hmac-sha256": (
            {"algorithm": "hmac-sha256", "key": SECRET},
            lambda text: hmac.new(SECRET.encode(), text, hashlib.sha256).digest(),
        ),
        "ed25519": (
            {"algorithm": "ed25519", "key": base64.b64encode(public).decode()},
            private.sign,
        ),
    }


def check_alone(calls: int) -> dict[str, float]:
    """µs of CPU per `check`, for each algorithm."""
    found = {}
    for name, (signing, sign) in _keys().items():
        if signing is None or sign is None:
            continue
        key = Signing(algorithm=signing["algorithm"], key=signing["key"])  # type: ignore[arg-type]
        now = int(time.time())
        user = str(uuid.uuid4())
        headers = [
            f"t={now},sig={_b64(sign(signed_text(f'tok{i}', user, 10, now)))}" for i in range(calls)
        ]
        started = time.process_time()
        for i, header in enumerate(headers):
            check(key, header, token=f"tok{i}", user_id=user, increase=10, now_s=now, max_age_s=300)
        found[name] = (time.process_time() - started) / calls * 1e6
    return found


async def _one_phase(
    http: httpx.AsyncClient, access: str, board: str, sign: Signer | None, user: str, count: int
) -> float:
    """CPU µs of this process per update (token and update)."""
    headers = {"Authorization": f"Bearer {access}"}
    spent = 0.0
    for _ in range(count):
        issued = await http.post(
            "/v1/auth/action-token",
            json={"action_type": "run", "session_id": "s1", "board": board},
            headers=headers,
        )
        token = issued.json()["data"]["action_token"]
        extra = {"X-Action-Token": token}
        if sign is not None:
            now = int(time.time())
            extra["X-Action-Signature"] = (
                f"t={now},sig={_b64(sign(signed_text(token, user, 1, now)))}"
            )
        started = time.process_time()
        answer = await http.post(
            "/v1/scores/update", json={"score_increase": 1}, headers={**headers, **extra}
        )
        spent += time.process_time() - started
        assert answer.status_code == 200, answer.text
    return spent / count * 1e6


async def whole_update(redis_url: str, admin_dsn: str, updates: int, rounds: int) -> dict[str, Any]:
    per_board: dict[str, list[float]] = {}
    async with app_client(redis_url, admin_dsn) as (http, services):
        name = f"sigadmin{uuid.uuid4().hex[:6]}"
        await services.accounts.create(name, f"{name}@example.com", "bench password", role="admin")
        login = await http.post(
            "/v1/auth/login", json={"username": name, "password": "bench password"}
        )
        admin_headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
        keys = _keys()
        for board, (signing, _) in keys.items():
            body: dict[str, Any] = {"name": f"sig-{board}", "action_types": {"run": 100}}
            if signing is not None:
                body["signing"] = signing
            created = await http.post("/v1/admin/boards", json=body, headers=admin_headers)
            assert created.status_code == 201, created.text
        player = f"sigplayer{uuid.uuid4().hex[:6]}"
        await http.post(
            "/v1/auth/register",
            json={
                "username": player,
                "email": f"{player}@example.com",
                "password": "bench password",
            },
        )
        session = (
            await http.post(
                "/v1/auth/login", json={"username": player, "password": "bench password"}
            )
        ).json()["data"]
        for _ in range(rounds):
            for board, (_, sign) in keys.items():
                cost = await _one_phase(
                    http,
                    session["access_token"],
                    f"sig-{board}",
                    sign,
                    session["user_id"],
                    updates,
                )
                per_board.setdefault(board, []).append(cost)
    return {board: statistics.median(costs) for board, costs in per_board.items()}


def write_report(args: argparse.Namespace, alone: dict[str, float], whole: dict[str, float]) -> str:
    base = whole["none"]
    lines = [
        "# What a game-server signature costs a score update",
        "",
        f"`python -m bench.signatures --updates {args.updates} --rounds {args.rounds}`, one run.",
        "",
        "The check alone (`scoreboard.scoring.signatures.check`), CPU per call:",
        "",
        "| algorithm | µs |",
        "| --- | ---: |",
        *(f"| {name} | {cost:.1f} |" for name, cost in alone.items()),
        "",
        "The whole update request through the app in one process (the check, the replay"
        " guard's `SET NX` and the score script), this process's CPU per update, medians"
        f" of {args.rounds} rounds of {args.updates} updates:",
        "",
        "| board's key | µs per update | ratio to no key |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {cost:.0f} | {cost / base:.2f} |" for name, cost in whole.items()),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    redis_url = services.redis_url()
    admin_dsn = services.admin_dsn()
    alone = check_alone(max(args.updates, 200))
    whole = asyncio.run(whole_update(redis_url, admin_dsn, args.updates, args.rounds))
    report = write_report(args, alone, whole)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "SIGNATURES.md").write_text(report)
    (args.out / "signatures.json").write_text(
        json.dumps({"check_alone_us": alone, "update_us": whole}, indent=2) + "\n"
    )
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
