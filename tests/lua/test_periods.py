"""The period calendar: its boundaries, and the Lua include against its Python twin
on both Lua runtimes."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from scoreboard.core.periods import (
    KINDS,
    CurrentPeriods,
    civil_from_days,
    days_from_civil,
    iso_utc,
    parse_period_id,
    period_at,
)
from scoreboard.storage.scripts import lua_dir


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


CASES = [
    # (instant, kind, id, starts, ends)
    ("2026-11-30T23:59:59.999", "daily", "daily:2026-11-30", "2026-11-30", "2026-12-01"),
    ("2026-12-01T00:00:00.000", "daily", "daily:2026-12-01", "2026-12-01", "2026-12-02"),
    ("2024-02-29T12:00:00.000", "daily", "daily:2024-02-29", "2024-02-29", "2024-03-01"),
    ("2026-12-31T23:59:59.999", "daily", "daily:2026-12-31", "2026-12-31", "2027-01-01"),
    # ISO weeks: Monday 00:00 UTC; 2026 has a week 53 that ends in 2027
    ("2026-11-29T23:59:59.999", "weekly", "weekly:2026-W48", "2026-11-23", "2026-11-30"),
    ("2026-11-30T00:00:00.000", "weekly", "weekly:2026-W49", "2026-11-30", "2026-12-07"),
    ("2026-12-31T10:00:00.000", "weekly", "weekly:2026-W53", "2026-12-28", "2027-01-04"),
    ("2027-01-03T23:59:59.999", "weekly", "weekly:2026-W53", "2026-12-28", "2027-01-04"),
    ("2027-01-04T00:00:00.000", "weekly", "weekly:2027-W01", "2027-01-04", "2027-01-11"),
    ("2025-12-29T00:00:00.000", "weekly", "weekly:2026-W01", "2025-12-29", "2026-01-05"),
    ("2024-12-31T00:00:00.000", "weekly", "weekly:2025-W01", "2024-12-30", "2025-01-06"),
    # months: ends, leap and common Februaries, the year end
    ("2026-11-30T23:59:59.999", "monthly", "monthly:2026-11", "2026-11-01", "2026-12-01"),
    ("2026-12-01T00:00:00.000", "monthly", "monthly:2026-12", "2026-12-01", "2027-01-01"),
    ("2024-02-29T23:59:59.999", "monthly", "monthly:2024-02", "2024-02-01", "2024-03-01"),
    ("2100-02-28T23:59:59.999", "monthly", "monthly:2100-02", "2100-02-01", "2100-03-01"),
    ("2000-02-29T00:00:00.000", "monthly", "monthly:2000-02", "2000-02-01", "2000-03-01"),
]


@pytest.mark.parametrize(("instant", "kind", "period_id", "starts", "ends"), CASES)
def test_period_boundaries(instant: str, kind: str, period_id: str, starts: str, ends: str) -> None:
    period = period_at(kind, ms(instant))
    assert period.id == period_id
    assert iso_utc(period.starts_ms) == f"{starts}T00:00:00.000Z"
    assert iso_utc(period.ends_ms) == f"{ends}T00:00:00.000Z"  # the next reset


def test_days_round_trip_over_four_centuries() -> None:
    for day in range(-1, 146_097 * 2, 17):
        assert days_from_civil(*civil_from_days(day)) == day
    assert civil_from_days(0) == (1970, 1, 1)


@pytest.mark.parametrize(
    ("text", "kind", "starts"),
    [
        ("daily:2026-11-30", "daily", "2026-11-30"),
        ("weekly:2026-W53", "weekly", "2026-12-28"),
        ("weekly:2026-W48", "weekly", "2026-11-23"),
        ("monthly:2024-02", "monthly", "2024-02-01"),
    ],
)
def test_history_ids_parse(text: str, kind: str, starts: str) -> None:
    period = parse_period_id(text)
    assert period is not None
    assert (period.kind, iso_utc(period.starts_ms)) == (kind, f"{starts}T00:00:00.000Z")


@pytest.mark.parametrize(
    "text",
    [
        "daily:2026-02-29",  # not a leap year
        "daily:2026-13-01",
        "weekly:2027-W53",  # 2027 has 52 weeks
        "weekly:2026-W00",
        "monthly:2026-00",
        "season:0",
        "season:-1",
        "daily:2026-1-01",
        "all",
        "yearly:2026",
    ],
)
def test_bad_history_ids_are_none(text: str) -> None:
    assert parse_period_id(text) is None


def test_seasons_parse() -> None:
    period = parse_period_id("season:3")
    assert period is not None and period.kind == "season"


HARNESS = """
local out = {}
for i = 1, #ARGV do
  for _, kind in ipairs({'daily', 'weekly', 'monthly'}) do
    local id, starts, ends = period_at(kind, tonumber(ARGV[i]))
    out[#out + 1] = id
    out[#out + 1] = string.format('%d', starts)
    out[#out + 1] = string.format('%d', ends)
  end
end
return out
"""


def _instants() -> list[int]:
    rng = random.Random(20261201)
    low, high = ms("1990-01-01T00:00:00"), ms("2200-01-01T00:00:00")
    instants = [rng.randrange(low, high) for _ in range(400)]
    for instant, *_ in CASES:  # and a millisecond either side of every boundary case
        instants += [ms(instant) - 1, ms(instant), ms(instant) + 1]
    for year in range(1999, 2060):  # every year end
        instants += [ms(f"{year}-12-31T23:59:59.999"), ms(f"{year + 1}-01-01T00:00:00")]
    return instants


async def test_lua_twin_agrees_with_python(lua_backend: aioredis.Redis) -> None:
    source = (lua_dir() / "include" / "periods.lua").read_text() + HARNESS
    instants = _instants()
    for offset in range(0, len(instants), 100):
        chunk = instants[offset : offset + 100]
        reply = await lua_backend.eval(source, 0, *chunk)
        got = [value.decode() if isinstance(value, bytes) else str(value) for value in reply]
        want = []
        for instant in chunk:
            for kind in KINDS:
                period = period_at(kind, instant)
                want += [period.id, str(period.starts_ms), str(period.ends_ms)]
        assert got == want


def test_current_periods_move_on_at_the_boundary() -> None:
    current = CurrentPeriods()
    last = ms("2026-12-01T23:59:59.999")
    assert current.at("daily", last).id == "daily:2026-12-01"
    assert current.at("daily", last + 1).id == "daily:2026-12-02"
    assert current.at("daily", last).id == "daily:2026-12-01"  # a clock that steps back
    assert current.at("weekly", last + 1) == period_at("weekly", last + 1)
