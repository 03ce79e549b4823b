"""The app in the benchmark's own process, over ASGI: on the Redis of `redis_url` under a
key prefix of its own and a PostgreSQL database of its own (dropped afterwards), every
rate limit out of the way, for measuring this process's CPU per request."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx

from bench.sync_drain import with_database
from scoreboard.api.app import create_app
from scoreboard.api.services import Services
from scoreboard.core.settings import RateRule, Settings

GENEROUS = RateRule(10_000_000, 60)


@asynccontextmanager
async def app_client(
    redis_url: str, admin_dsn: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    database = f"scoreboard_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    settings = Settings(
        redis_url=redis_url,
        database_url=with_database(admin_dsn, database),
        jwt_secret="bench-access-secret-0123456789abcdefghij",
        jwt_refresh_secret="bench-refresh-secret-0123456789abcdefghij",
        redis_prefix=f"sbbench{uuid.uuid4().hex[:8]}",
        bcrypt_rounds=4,
        rate_limit_score_update=GENEROUS,
        rate_limit_action_token=GENEROUS,
        rate_limit_login=GENEROUS,
        rate_limit_leaderboard=GENEROUS,
        anticheat_mode="off",
        admin_mfa="optional",
    )
    services = await Services.open(settings)
    try:
        app = create_app(settings)
        app.state.services = services
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            yield http, services
    finally:
        await services.close()
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def signed_in(http: httpx.AsyncClient, prefix: str) -> dict[str, str]:
    """A new player registered and logged in: its Authorization header."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    await http.post(
        "/v1/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": "bench pw 1"},
    )
    login = await http.post("/v1/auth/login", json={"username": name, "password": "bench pw 1"})
    return {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
