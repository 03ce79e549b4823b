"""`scores` and `audit_log` partitioned by month (migration 0010): a populated database
migrates with no event lost or doubled, a replayed event still inserts nothing, a read
of one month touches one partition, the months ahead are made, and the audit trail's
retention drops whole months."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest
import pytest_asyncio

from scoreboard.boards.moderation import AUDIT_RECORDS
from scoreboard.core.settings import Settings
from scoreboard.storage.database import create_pool
from scoreboard.storage.migrations import migrate
from scoreboard.storage.partitions import keep_months, month_of, months_of
from scoreboard.storage.redis_client import connect_for
from scoreboard.sync import SyncFleet
from scoreboard.sync.events import APPLIED, AUDIT, StreamEvent
from scoreboard.sync.persist import persist_batch, persist_fresh
from tests.storage.migration_helpers import migrate_before
from tests.stream_events import stream_event

PARTITIONING = 10
# a year of history: December 2025 to November 2026
MONTHS = [date(2025 + (11 + i) // 12, (11 + i) % 12 + 1, 1) for i in range(12)]
PLAYERS = 3
UPDATES = 4  # a player's updates a month, besides the two on the month's edges


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _year_of_history(players: list[str]) -> list[StreamEvent]:
    """Each month: every player's updates (one at the month's first millisecond, one
    at its last), and a logout each."""
    events = []
    seq = 0
    for month in MONTHS:
        start = datetime(month.year, month.month, 1, tzinfo=UTC)
        after = _ms(datetime.combine(month_of(start, 1), datetime.min.time(), tzinfo=UTC))
        moments = [_ms(start), after - 1] + [
            _ms(start) + 86_400_000 * (3 + 5 * i) for i in range(UPDATES)
        ]
        for user_id in players:
            for ts_ms in moments:
                seq += 1
                events.append(stream_event(user_id, ts_ms, seq, 1 + seq % 7))
            events.append(stream_event(user_id, moments[2] + 1, 0, 0, kind=AUDIT))
    return events


@pytest_asyncio.fixture
async def conn(own_database: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(own_database)
    yield connection
    await connection.close()


async def _counts(conn: asyncpg.Connection) -> tuple[int, int, int, int]:
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM scores) AS scores,"
        " (SELECT count(DISTINCT id) FROM scores) AS events,"
        " (SELECT count(*) FROM audit_log) AS audit,"
        " (SELECT coalesce(sum(score), 0) FROM board_scores) AS total"
    )
    return tuple(row)  # type: ignore[return-value]


async def _user(conn: asyncpg.Connection, name: str) -> str:
    return str(
        await conn.fetchval(
            "INSERT INTO users (username, username_key, email, password_hash)"
            " VALUES ($1::text, $1::text, $1::text || '@example.test', 'x') RETURNING id",
            name,
        )
    )


async def _by_partition(conn: asyncpg.Connection, table: str) -> dict[str, int]:
    rows = await conn.fetch(
        f"SELECT tableoid::regclass::text AS name, count(*) FROM {table} GROUP BY 1"  # noqa: S608
    )
    return {row["name"]: row["count"] for row in rows}


def _partitions_read(plan: list[str], table: str) -> set[str]:
    return set(re.findall(rf"\b({table}_(?:\d{{4}}_\d{{2}}|default))\b", "\n".join(plan)))


async def test_a_year_of_history_migrates_into_monthly_partitions_with_no_event_lost_or_doubled(
    conn: asyncpg.Connection, own_database: str
) -> None:
    await migrate_before(conn, PARTITIONING)
    players = [await _user(conn, f"p{i}") for i in range(PLAYERS)]
    events = _year_of_history(players)
    applied = [event for event in events if event.kind == APPLIED]
    async with conn.transaction():
        await persist_fresh(conn, events)
    before = await _counts(conn)
    assert before == (len(applied), len(applied), len(events), sum(e.delta for e in applied))

    pool = await create_pool(own_database, size=2)
    try:
        assert (await migrate(pool))[0] == PARTITIONING
    finally:
        await pool.close()
    assert await _counts(conn) == before
    per_month = PLAYERS * (UPDATES + 2)
    expected = {f"scores_{month:%Y_%m}": per_month for month in MONTHS}
    assert await _by_partition(conn, "scores") == expected  # the edges in their own month
    audit = await _by_partition(conn, "audit_log")
    assert audit == {f"audit_log_{month:%Y_%m}": per_month + PLAYERS for month in MONTHS}
    months = await months_of(conn, "scores")
    this_month = month_of(datetime.now(UTC))
    assert {MONTHS[0], month_of(datetime.now(UTC), 2)} <= set(months.values())
    assert this_month in set(months.values())

    # the whole year replayed (a redelivered batch) inserts nothing and counts nothing
    async with conn.transaction():
        await persist_batch(conn, events)
    assert await _counts(conn) == before
    # and copied again as if new, the unique keys refuse it
    with pytest.raises(asyncpg.UniqueViolationError):
        async with conn.transaction():
            await persist_fresh(conn, events[:5])

    # a read of one month touches that month's partition alone
    march = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    plan = [
        row[0]
        for row in await conn.fetch("EXPLAIN " + AUDIT_RECORDS, None, 50, None, players[0], *march)
    ]
    assert _partitions_read(plan, "audit_log") == {"audit_log_2026_03"}
    listed = await conn.fetch(AUDIT_RECORDS, None, 50, None, players[0], *march)
    assert len(listed) == UPDATES + 2 + 1
    plan = [
        row[0]
        for row in await conn.fetch(
            "EXPLAIN SELECT sum(score_change) FROM scores WHERE user_id = $1"
            " AND created_at >= $2 AND created_at < $3",
            players[0],
            *march,
        )
    ]
    assert _partitions_read(plan, "scores") == {"scores_2026_03"}
    # a listing without a range reads every month
    plan = [
        row[0]
        for row in await conn.fetch("EXPLAIN " + AUDIT_RECORDS, None, 50, None, None, None, None)
    ]
    assert len(_partitions_read(plan, "audit_log")) > 12


async def test_months_are_made_ahead_and_the_audit_retention_drops_whole_months(
    conn: asyncpg.Connection, own_database: str
) -> None:
    pool = await create_pool(own_database, size=2)
    try:
        await migrate(pool)
        player = await _user(conn, "keeper")
        for month in MONTHS:  # a year of months, as an older deployment has them
            for table in ("scores", "audit_log"):
                await conn.execute("SELECT month_partition($1, $2)", table, month)
        events = _year_of_history([player])
        async with conn.transaction():
            await persist_fresh(conn, events)
        scores_before = await conn.fetchval("SELECT count(*) FROM scores")

        # a month no partition has yet: caught by the default partition...
        late = stream_event(player, _ms(datetime(2031, 6, 15, tzinfo=UTC)), 10_000, 5)
        async with conn.transaction():
            await persist_fresh(conn, [late])
        assert await _by_partition(conn, "scores") == {
            **{f"scores_{m:%Y_%m}": UPDATES + 2 for m in MONTHS},
            "scores_default": 1,
        }
        # ...and moved into that month's partition when it is made
        assert await conn.fetchval("SELECT month_partition('scores', '2031-06-01')") is True
        assert await conn.fetchval("SELECT month_partition('scores', '2031-06-01')") is False
        assert (await _by_partition(conn, "scores")).get("scores_2031_06") == 1
        assert "scores_default" not in await _by_partition(conn, "scores")
        async with conn.transaction():
            await persist_batch(conn, [late])  # replayed after the move: still once
        assert await conn.fetchval("SELECT count(*) FROM scores") == scores_before + 1

        now = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
        changes = await keep_months(pool, now, audit_retention_months=6)
        dropped = {f"audit_log_{m:%Y_%m}" for m in MONTHS if m < date(2026, 6, 1)}
        assert {c.split()[1] for c in changes if c.startswith("dropped")} == dropped
        assert len(dropped) == 6
        assert not set(await months_of(conn, "audit_log")) & dropped
        assert {f"scores_{m:%Y_%m}" for m in MONTHS} <= set(await months_of(conn, "scores"))
        assert await conn.fetchval("SELECT count(*) FROM scores") == scores_before + 1
        # six months kept, and the late update's record (in the default partition)
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 6 * (UPDATES + 3) + 1
        # the months around now exist for both tables, made once
        for table in ("scores", "audit_log"):
            held = set((await months_of(conn, table)).values())
            assert {month_of(now, shift) for shift in range(-1, 3)} <= held
        assert await keep_months(pool, now, audit_retention_months=6) == []
    finally:
        await pool.close()


async def test_a_running_syncer_looks_after_the_months(
    settings: Settings, own_database: str
) -> None:
    """At start the syncer makes the months around now and drops the audit months
    past the retention."""
    pool = await create_pool(own_database, size=4)
    redis = connect_for(settings)
    try:
        await migrate(pool)
        await pool.execute("SELECT month_partition('audit_log', '2020-01-01')")
        await pool.execute("DROP TABLE scores_" + f"{month_of(datetime.now(UTC), 2):%Y_%m}")
        fleet = SyncFleet(
            dataclasses.replace(settings, database_url=own_database, audit_retention_months=3),
            redis,
            pool,
        )
        running = asyncio.create_task(fleet.run())
        try:
            for _ in range(100):
                audit = set(await months_of(pool, "audit_log"))
                scores = set((await months_of(pool, "scores")).values())
                if "audit_log_2020_01" not in audit and month_of(datetime.now(UTC), 2) in scores:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the syncer did not look after the months")
        finally:
            fleet.stop()
            await running
    finally:
        await redis.aclose()
        await pool.close()
