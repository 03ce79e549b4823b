"""How fast the syncer drains a backlog: events/s persisted to PostgreSQL.

    .venv/bin/python bench/sync_drain.py [--events 100000] [--runs 3]

Uses REDIS_URL / DATABASE_URL (defaults: the local servers), its own key prefix and
its own database, both removed afterwards. The backlog is written straight into the
board's stream in the exact shape `lua/submit_score.lua` writes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from bench import services
from scoreboard.core.event_ids import new_event_id
from scoreboard.core.gc_tuning import tune_for_service
from scoreboard.core.settings import Settings
from scoreboard.storage.database import create_pool
from scoreboard.storage.keys import Keys
from scoreboard.storage.migrations import migrate
from scoreboard.sync import Syncer

PLAYERS = 1000


def with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


def _event(seq: int, user_id: str) -> dict[str, str]:
    return {
        "type": "score_updated",
        "event_id": new_event_id(),  # as the server makes them
        "seq": str(seq),
        "token_max": "100",
        "token_expires_ms": str(int(time.time() * 1000) + 300_000),
        "board": "global",
        "user_id": user_id,
        "username": f"p{user_id[:8]}",
        "delta": "7",
        "old_score": "0",
        "new_score": str(7 * (seq // PLAYERS + 1)),
        "old_rank": "0",
        "new_rank": "1",
        "action_type": "game_completion",
        "session_id": "bench",
        "token_hash": uuid.uuid4().hex * 2,
        "risk": "0.007",
        "flagged": "0",
        "reason": "",
        "ip": "127.0.0.1",
        "user_agent": "bench",
        "action_data": json.dumps({"level": 3, "time_taken": 42.5}, separators=(",", ":")),
        "ts": str(int(time.time() * 1000)),
    }


async def _seed_players(pool: asyncpg.Pool) -> list[str]:
    rows = [
        (f"bench{i:05d}", f"bench{i:05d}", f"bench{i:05d}@example.com", "x") for i in range(PLAYERS)
    ]
    await pool.executemany(
        "INSERT INTO users (username, username_key, email, password_hash) VALUES ($1,$2,$3,$4)",
        rows,
    )
    return [r["id"] for r in await pool.fetch("SELECT id::text FROM users ORDER BY username")]


async def _fill_stream(client: aioredis.Redis, stream: str, users: list[str], count: int) -> None:
    for start in range(0, count, 2000):
        pipe = client.pipeline(transaction=False)
        for seq in range(start, min(count, start + 2000)):
            pipe.xadd(stream, _event(seq + 1, users[seq % len(users)]))
        await pipe.execute()


async def one_run(
    redis_url: str, admin_dsn: str, events: int, batch: int = 5000, consumers: int = 1
) -> float:
    database = f"scoreboard_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = with_database(admin_dsn, database)
    prefix = f"sbbench{uuid.uuid4().hex[:8]}"
    settings = Settings(
        redis_url=redis_url,
        database_url=dsn,
        jwt_secret="a" * 32,
        jwt_refresh_secret="b" * 32,
        redis_prefix=prefix,
        sync_block_ms=10,
        sync_batch_size=batch,
        reconcile_interval_ms=0,  # the board here is empty by design
    )
    client = aioredis.Redis.from_url(redis_url)
    pool = await create_pool(dsn, size=max(4, consumers * 2))
    try:
        await migrate(pool)
        users = await _seed_players(pool)
        await _fill_stream(client, Keys(prefix).events(), users, events)
        # A backlog builds up behind a live board: mark it ready, so the timed part is
        # the drain and not a rebuild of a board that was never written.
        await client.hset(
            Keys(prefix).board_state(), mapping={"epoch": "bench", "seq": 0, "players": 0}
        )
        syncers = [Syncer(settings, client, pool, consumer=f"bench{i}") for i in range(consumers)]
        tune_for_service()  # as `scoreboard sync` does
        started = time.perf_counter()
        await asyncio.gather(*(syncer.run(burst=True) for syncer in syncers))
        elapsed = time.perf_counter() - started
        committed = sum(syncer.stats.committed_events for syncer in syncers)
        assert committed == events, committed
        return events / elapsed
    finally:
        await pool.close()
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--consumers", type=int, default=1)
    args = parser.parse_args()
    redis_url = services.redis_url()
    admin_dsn = services.admin_dsn()
    rates = [await one_run(redis_url, admin_dsn, args.events, args.batch) for _ in range(args.runs)]
    result = {
        "events": args.events,
        "runs": [round(r) for r in rates],
        "median_events_per_second": round(statistics.median(rates)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
