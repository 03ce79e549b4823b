"""Two deployments on one Redis never see each other: same prefix on different DB
numbers (Redis pub/sub ignores DB numbers), or different prefixes on one DB."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis as sync_redis

from scoreboard.api.app import create_app
from scoreboard.api.services import Services
from scoreboard.core.settings import Settings
from scoreboard.storage.keys import Keys
from tests.auth_helpers import new_player, submit


def _on_db(url: str, db: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@asynccontextmanager
async def _deployment(settings: Settings) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    services = await Services.open(settings)
    app = create_app(settings)
    app.state.services = services
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield services, http
    finally:
        await services.close()
        assert settings.redis_url
        client = sync_redis.Redis.from_url(settings.redis_url)
        stale = list(client.scan_iter(match=Keys(settings.redis_prefix).pattern()))
        if stale:
            client.delete(*stale)
        client.close()


@pytest.mark.parametrize("apart_by", ["db number", "prefix"])
async def test_two_deployments_on_one_redis_never_meet(
    settings: Settings, own_database: str, apart_by: str
) -> None:
    """Was: staging on DB 13 and production on DB 14 with one prefix shared a channel,
    and production's top 10 showed staging's player instead of its own."""
    assert settings.redis_url
    prefix = f"sbt{uuid.uuid4().hex[:8]}"
    if apart_by == "db number":
        production = dataclasses.replace(
            settings, redis_url=_on_db(settings.redis_url, 14), redis_prefix=prefix
        )
        staging = dataclasses.replace(
            settings,
            redis_url=_on_db(settings.redis_url, 13),
            redis_prefix=prefix,
            database_url=own_database,
        )
    else:
        production = dataclasses.replace(settings, redis_prefix=prefix)
        staging = dataclasses.replace(
            settings, redis_prefix=f"{prefix}s", database_url=own_database
        )
    async with (
        _deployment(production) as (prod, prod_http),
        _deployment(staging) as (
            _,
            stage_http,
        ),
    ):
        ours = await new_player(prod_http)
        assert (await submit(prod_http, ours, 10)).status_code == 200
        theirs = await new_player(stage_http)
        for _ in range(3):  # staging runs ahead of production's update count
            assert (await submit(stage_http, theirs, 30)).status_code == 200
        await asyncio.sleep(0.3)  # what production's subscription would have heard
        top = (await prod_http.get("/leaderboard/top10")).json()["data"]
        assert [e["user_id"] for e in top["leaderboard"]] == [ours["user_id"]]
        assert top["total_players"] == 1
        staged = (await stage_http.get("/leaderboard/top10")).json()["data"]
        assert [e["user_id"] for e in staged["leaderboard"]] == [theirs["user_id"]]
        assert prod.keys.updates_channel() != Keys.for_settings(staging).updates_channel()
