"""The calendar of a board's periods, in UTC: the Python twin of lua/include/periods.lua.

The scripts decide which period an update counts in (from Redis `TIME`); reads use
this module to name the current period and its next reset. Both are integer
arithmetic on milliseconds since the epoch, and a test holds them to the same answers.

    daily    daily:2026-12-01   from 00:00 UTC, one day
    weekly   weekly:2026-W49    ISO weeks: from Monday 00:00 UTC, the year of its Thursday
    monthly  monthly:2026-12    from the 1st, 00:00 UTC
    season   season:3           the all-time ranking's seasons (ended by an admin's reset)
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from scoreboard.core import contract

DAY_MS = 86_400_000
KINDS = ("daily", "weekly", "monthly")
ALL_TIME = "all"

_ID_RE = re.compile(
    r"\A(?:daily:(\d{4})-(\d{2})-(\d{2})|weekly:(\d{4})-W(\d{2})|monthly:(\d{4})-(\d{2})"
    r"|season:([1-9]\d{0,8}))\Z"
)


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def civil_from_days(days: int) -> tuple[int, int, int]:
    """The (year, month, day) of a day number."""
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


@dataclass(frozen=True)
class Period:
    kind: str
    id: str
    starts_ms: int
    ends_ms: int  # exclusive: the next period starts here (the next reset)


def _iso_week(day: int) -> tuple[int, int, int]:
    """(ISO year, week, the Monday's day number) of a day number."""
    monday = day - (day + 3) % 7  # 1970-01-01 was a Thursday
    thursday = monday + 3
    year = civil_from_days(thursday)[0]
    week = (thursday - days_from_civil(year, 1, 1)) // 7 + 1
    return year, week, monday


def period_at(kind: str, now_ms: int) -> Period:
    """The period of this kind that the instant falls in."""
    day = now_ms // DAY_MS
    if kind == "daily":
        year, month, dom = civil_from_days(day)
        return Period(
            kind, f"daily:{year:04d}-{month:02d}-{dom:02d}", day * DAY_MS, (day + 1) * DAY_MS
        )
    if kind == "weekly":
        year, week, monday = _iso_week(day)
        return Period(
            kind, f"weekly:{year:04d}-W{week:02d}", monday * DAY_MS, (monday + 7) * DAY_MS
        )
    if kind == "monthly":
        year, month, _ = civil_from_days(day)
        first = days_from_civil(year, month, 1)
        following = days_from_civil(year + (month == 12), month % 12 + 1, 1)
        return Period(kind, f"monthly:{year:04d}-{month:02d}", first * DAY_MS, following * DAY_MS)
    raise ValueError(f"unknown period kind {kind!r}")


def parse_period_id(text: str) -> Period | None:
    """The closed or current period a history id names (None: not a period id, or a
    date that does not exist). Seasons have no calendar: their times are 0."""
    match = _ID_RE.match(text)
    if match is None:
        return None
    groups = match.groups()
    if groups[7] is not None:
        return Period("season", text, 0, 0)
    try:
        if groups[0] is not None:
            when = datetime(int(groups[0]), int(groups[1]), int(groups[2]), tzinfo=UTC)
            kind = "daily"
        elif groups[3] is not None:
            when = datetime.fromisocalendar(int(groups[3]), int(groups[4]), 1).replace(tzinfo=UTC)
            kind = "weekly"
        else:
            when = datetime(int(groups[5]), int(groups[6]), 1, tzinfo=UTC)
            kind = "monthly"
    except ValueError:
        return None
    period = period_at(kind, int(when.timestamp() * 1000))
    return period if period.id == text else None


class CurrentPeriods:
    """The current period of each kind, computed again only when the clock has left
    it (an update names its periods; most updates of a day share them)."""

    def __init__(self) -> None:
        self._held: dict[str, Period] = {}

    def at(self, kind: str, now_ms: int) -> Period:
        held = self._held.get(kind)
        if held is None or not held.starts_ms <= now_ms < held.ends_ms:
            held = self._held[kind] = period_at(kind, now_ms)
        return held


@functools.lru_cache(maxsize=1024)
def iso_utc(ms: int) -> str:
    """An instant as ISO 8601 UTC with milliseconds, 'Z' suffixed."""
    return iso_instant(datetime.fromtimestamp(ms / 1000, UTC))


def iso_instant(moment: datetime) -> str:
    """A UTC datetime (as PostgreSQL gives it) as ISO 8601 with milliseconds, 'Z'."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def period_reply(period: Period) -> contract.Period:
    return contract.Period(
        id=period.id,
        kind=period.kind,  # type: ignore[arg-type]  # one of KINDS
        starts_at=iso_utc(period.starts_ms),
        ends_at=iso_utc(period.ends_ms),
        next_reset_at=iso_utc(period.ends_ms),
    )
