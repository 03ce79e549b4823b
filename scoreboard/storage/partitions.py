"""The monthly partitions of `scores` and `audit_log` (migration 0010): the coming
months made ahead, and the audit trail's months past its retention dropped whole.

A partition is named after its table and UTC month (`scores_2026_12`) and made by the
database's `month_partition(table, month)`, which also moves into it any rows of that
month the table's default partition caught. Several processes may keep the months at
once: the function takes a lock per table and makes each month once.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime

import asyncpg

from scoreboard.storage.database import db_errors

log = logging.getLogger("scoreboard.partitions")

PARTITIONED = ("scores", "audit_log")
AUDIT = "audit_log"
MONTHS_BEHIND = 1  # a backlog synced just after a month turns still finds its month
MONTHS_AHEAD = 2
_MONTH_RE = re.compile(r"_(\d{4})_(\d{2})\Z")

_PARTITIONS = """
SELECT c.relname FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass
"""


def month_of(moment: datetime, shift: int = 0) -> date:
    """The first day of `moment`'s UTC month, `shift` months on."""
    utc = moment.astimezone(UTC)
    index = utc.year * 12 + utc.month - 1 + shift
    return date(index // 12, index % 12 + 1, 1)


def partition_month(name: str) -> date | None:
    """The month a partition holds (None for the default partition)."""
    found = _MONTH_RE.search(name)
    return date(int(found[1]), int(found[2]), 1) if found else None


async def months_of(conn: asyncpg.Connection | asyncpg.Pool, table: str) -> dict[str, date]:
    """Each monthly partition of `table` by name, with its month."""
    rows = await conn.fetch(_PARTITIONS, table)
    return {
        row["relname"]: month
        for row in rows
        if (month := partition_month(row["relname"])) is not None
    }


async def keep_months(pool: asyncpg.Pool, now: datetime, audit_retention_months: int) -> list[str]:
    """Make the months around `now` of every partitioned table, and drop the audit
    trail's months that ended more than `audit_retention_months` ago (0: none are
    dropped). What changed, a line each."""
    changes = []
    async with db_errors(), pool.acquire() as conn:
        for table in PARTITIONED:
            for shift in range(-MONTHS_BEHIND, MONTHS_AHEAD + 1):
                month = month_of(now, shift)
                if await conn.fetchval("SELECT month_partition($1, $2)", table, month):
                    changes.append(f"made {table}_{month:%Y_%m}")
        if audit_retention_months:
            oldest_kept = month_of(now, -audit_retention_months)
            for name, month in sorted((await months_of(conn, AUDIT)).items()):
                if month < oldest_kept:
                    await conn.execute(f'DROP TABLE "{name}"')
                    changes.append(f"dropped {name} (audit retention)")
    for change in changes:
        log.info("partitions: %s", change)
    return changes
