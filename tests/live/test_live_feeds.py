"""Every ranking's live feed through one mechanism, in process: any board's all-time feed
is fed by its board's events, and every followed board shows in `/metrics`."""

from __future__ import annotations

import json

import httpx
import pytest

from scoreboard.api.services import Services
from scoreboard.core.settings import Settings
from tests.auth_helpers import new_player
from tests.boards.test_boards_api import SPEEDRUN, _admin, _create, _play
from tests.conftest import unthrottled

pytestmark = pytest.mark.both_topologies


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return unthrottled(settings, own_database, anticheat_mode="off")


@pytest.mark.cluster_in_ci
async def test_another_boards_all_time_feed_names_the_update_and_reads_nothing(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was: only the default board's all-time feed carried the update that moved it
    (`updated_user`) and took the top from the event; another board's read its ranking
    from Redis on every change and named nobody."""
    admin = await _admin(client, services)
    assert (await _create(client, admin, SPEEDRUN)).status_code == 201
    await services.boards.ready("speedrun")
    feeds = services.live
    subscriber, first = await feeds.subscribe("speedrun", "all")
    assert json.loads(first.sse_data)["leaderboard"] == []
    feed = feeds.feed("speedrun", "all")
    assert feed is not None
    runner = await new_player(client)
    for _ in range(20):  # the board's channel is followed once its subscription is up
        if feeds.channels.connected().get("speedrun") and feed.reads >= 2:
            break
        await subscriber.next(0.05)
    settled = feed.reads
    assert (await _play(client, runner, 21, "speedrun")).status_code == 200
    message = await subscriber.next(3.0)
    assert message is not None
    data = json.loads(message.sse_data)
    assert data["board"] == "speedrun" and data["period"] == "all"
    assert [(e["user_id"], e["score"]) for e in data["leaderboard"]] == [(runner["user_id"], 21)]
    assert data["updated_user"]["user_id"] == runner["user_id"]
    assert data["updated_user"]["new_score"] == 21
    assert feed.reads == settled  # the top came with the event
    feeds.unsubscribe(subscriber)


async def test_metrics_show_every_followed_boards_feed(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was: the feed's connection and its broadcasts were series of the default board
    only; another board's followers showed, its feed did not."""
    admin = await _admin(client, services)
    assert (await _create(client, admin, SPEEDRUN)).status_code == 201
    await services.boards.ready("speedrun")
    subscriber, _ = await services.live.subscribe("speedrun", "daily")
    runner = await new_player(client)
    for _ in range(40):
        if services.live.channels.connected().get("speedrun"):
            break
        await subscriber.next(0.05)
    assert (await _play(client, runner, 5, "speedrun")).status_code == 200
    assert await subscriber.next(3.0) is not None
    metrics = (await client.get("/metrics")).text
    assert 'scoreboard_feed_connected{board="speedrun"} 1.0' in metrics
    assert 'scoreboard_live_clients{board="speedrun"} 1.0' in metrics
    assert 'scoreboard_live_broadcasts_total{board="speedrun"} 1.0' in metrics
    services.live.unsubscribe(subscriber)
