"""Typed, frozen settings read once from the environment and passed explicitly."""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import math
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from scoreboard.core.errors import SettingsError

T = TypeVar("T")

MIN_SECRET_BYTES = 32
MAX_EXACT_SCORE = 2**53 - 1
ANTICHEAT_MODES = ("enforce", "flag", "off")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RULE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)?\s*(second|minute|hour|day)s?\s*$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_]{1,32}$")
_ACTION_TYPE_RE = re.compile(r"^[a-z0-9_]{1,50}$")
_CONSUMER_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RateRule:
    "''`limit` requests per `period` seconds: a burst of `limit`, refilled evenly.''"

    limit: int
    period: int

    @classmethod
    def parse(cls, text: str) -> RateRule:
        match = _RULE_RE.match(text)
        if not match:
            raise ValueError("expected N/unit such as 10/minute or 100/10 seconds")
        limit, count, unit = int(match[1]), int(match[2] or 1), match[3]
        if limit < 1 or count < 1:
            raise ValueError("limit and period must be at least 1")
        return cls(limit=limit, period=count * _PERIODS[unit])

    @property
    def period_us(self) -> int:
        return self.period * 1_000_000

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


def _text(raw: str) -> str:
    return raw


def _url(*schemes: str) -> Callable[[str], str]:
    """A store's URL, with one of its schemes (a bare `host:port` is the usual slip)."""
    listed = ", ".join(f"{scheme}://" for scheme in schemes)

    def parse(raw: str) -> str:
        scheme, separator, _ = raw.partition("://")
        if not separator or scheme.lower() not in schemes:
            raise ValueError(f"expected a URL starting with {listed}, such as {schemes[0]}://host")
        return raw

    return parse


def _urls(*schemes: str) -> Callable[[str], tuple[str, ...]]:
    """Several of a store's URLs, separated by commas or spaces (a URL's own list of
    hosts, `postgresql://a,b/db`, stays whole: only a comma before a scheme splits)."""
    one = _url(*schemes)
    starts = "|".join(re.escape(f"{scheme}://") for scheme in schemes)

    def parse(raw: str) -> tuple[str, ...]:
        parts = re.split(rf"\s+|,\s*(?=(?:{starts}))", raw.strip(), flags=re.IGNORECASE)
        return tuple(one(part) for part in parts if part)

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError(f"expected {' or '.join(allowed)}")
        return raw

    return parse


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not re.fullmatch(r"\d+", raw) or not low <= int(raw) <= high:
            raise ValueError(f"expected a whole number from {low} to {high}")
        return int(raw)

    return parse


def _number_in(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        if not low <= number <= high:
            raise ValueError(f"expected a number from {low:g} to {high:g}")
        return number

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


def _anticheat_mode(raw: str) -> str:
    if raw not in ANTICHEAT_MODES:
        raise ValueError(f"expected one of {', '.join(ANTICHEAT_MODES)}")
    return raw


def _consumer(raw: str) -> str:
    if not _CONSUMER_RE.match(raw):
        raise ValueError("expected 1-64 letters, digits, '.', '_' or '-'")
    return raw


def _prefix(raw: str) -> str:
    if not _PREFIX_RE.match(raw):
        raise ValueError("expected 1-32 letters, digits or underscores")
    return raw


def _action_types(raw: str) -> dict[str, int]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError('expected a JSON object such as {"game_completion": 100}') from None
    if not isinstance(value, dict) or not value:
        raise ValueError("expected a non-empty JSON object of action type to max increase")
    for name, limit in value.items():
        if not _ACTION_TYPE_RE.match(name):
            raise ValueError(f"action type {name!r} must match [a-z0-9_]{{1,50}}")
        if type(limit) is not int or not 1 <= limit <= MAX_EXACT_SCORE:
            raise ValueError(
                f"max increase for {name!r} must be a whole number from 1 to {MAX_EXACT_SCORE}"
            )
    return value


def _points_per_second(raw: str) -> dict[str, float]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError('expected a JSON object such as {"game_completion": 10}') from None
    if not isinstance(value, dict) or not value:
        raise ValueError("expected a non-empty JSON object of action type to points per second")
    for name, rate in value.items():
        if type(rate) not in (int, float) or not 0 < rate <= MAX_EXACT_SCORE:
            raise ValueError(f"points per second for {name!r} must be a number above 0")
    return {name: float(rate) for name, rate in value.items()}


def _json_object(raw: str, example: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(f"expected a JSON object such as {example}") from None
    if not isinstance(value, dict) or not value:
        raise ValueError(f"expected a non-empty JSON object such as {example}")
    return value


def _whole(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_EXACT_SCORE


# the pace windows of the anti-cheat judge: check name -> seconds
PACE_WINDOWS = {
    "points_per_minute": 60,
    "points_per_10_minutes": 600,
    "points_per_hour": 3600,
    "points_per_day": 86400,
}
# their default [flag, reject] thresholds: the flags above the best of 2,000 simulated
# honest players' days (bench/honest_players.py: 200, 714, 2,291 and 13,238 points),
# the rejections at twice the flags
PACE_DEFAULTS = {
    "points_per_minute": (250, 500),
    "points_per_10_minutes": (800, 1600),
    "points_per_hour": (2700, 5400),
    "points_per_day": (16000, 32000),
}


def _pace(raw: str) -> dict[str, tuple[int, int]]:
    value = _json_object(raw, '{"points_per_minute": [250, 1000]}')
    pace = {}
    for name, limits in value.items():
        if name not in PACE_WINDOWS:
            raise ValueError(f"{name!r} is not a window: expected one of {', '.join(PACE_WINDOWS)}")
        if (
            not isinstance(limits, list)
            or len(limits) != 2
            or not all(_whole(limit) and limit >= 1 for limit in limits)
            or limits[0] > limits[1]
        ):
            raise ValueError(f"{name!r}: expected [flag, reject], whole numbers, flag <= reject")
        pace[name] = (limits[0], limits[1])
    return pace


def _levels(raw: str) -> dict[str, tuple[int, int]]:
    value = _json_object(raw, '{"game_completion": [1, 100]}')
    levels = {}
    for name, bounds in value.items():
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(_whole(bound) for bound in bounds)
            or bounds[0] > bounds[1]
        ):
            raise ValueError(f"{name!r}: expected [lowest, highest], whole numbers")
        levels[name] = (bounds[0], bounds[1])
    return levels


TIME_TAKEN_RULES = ("optional", "required", "token")


def _time_taken(raw: str) -> dict[str, str]:
    value = _json_object(raw, '{"game_completion": "required"}')
    for name, rule in value.items():
        if rule not in TIME_TAKEN_RULES:
            raise ValueError(f"{name!r}: expected one of {', '.join(TIME_TAKEN_RULES)}")
    return dict(value)


def _log_format(raw: str) -> str:
    if raw not in ("auto", "json", "text"):
        raise ValueError("expected auto, json or text")
    return raw


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/").lower() for part in raw.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[a-z0-9.\-]+(:\d{1,5})?", origin):
            raise ValueError(f"{origin!r} is not an origin such as https://game.example.com")
    return origins


def _networks(raw: str) -> tuple[IpNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip()) for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"expected comma-separated addresses or CIDR networks: {exc}") from None


_UNITS = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}


def setting(
    default: Any,
    parse: Callable[[str], Any],
    meaning: str,
    *,
    env: str | None = None,
    shown: str | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """One setting: its default (or `factory`), the parser of its variable's text (a
    ValueError names what is wrong), its meaning, its variable when not `SCOREBOARD_`
    plus the name, and how the default reads in the table when not its value."""
    metadata = {"parse": parse, "meaning": meaning, "env": env, "shown": shown}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    if isinstance(default, dict):
        frozen = dict(default)
        return field(default_factory=lambda: dict(frozen), metadata=metadata)
    return field(default=default, metadata=metadata)


def variable(declared: dataclasses.Field[Any]) -> str:
    "''The environment variable a setting is read from.''"
    return declared.metadata["env"] or f"SCOREBOARD_{declared.name.upper()}"


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, RateRule):
        unit = _UNITS.get(value.period)
        return f"`{value.limit}/{unit}`" if unit else f"`{value.limit}/{value.period} seconds`"
    if isinstance(value, dict):
        return f"`{json.dumps(value)}`"
    if value == ():
        return "none"
    return f"`{value}`"


def markdown_table() -> str:
    """The table of docs/configuration.md, made from the declarations."""
    defaults = Settings()
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for declared in dataclasses.fields(Settings):
        shown = declared.metadata["shown"] or _shown(getattr(defaults, declared.name))
        lines.append(f"| `{variable(declared)}` | {shown} | {declared.metadata['meaning']} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Settings:
    """Every setting, declared once: its type, default, parser and what it means. The
    variable is `SCOREBOARD_` plus the name in capitals unless `env` says otherwise;
    the table of docs/configuration.md is `markdown_table()` (a test compares them)."""

    redis_url: str | None = setting(
        None,
        _url("redis", "rediss", "unix"),
        (
            "Redis, e.g. `redis://localhost:6379/0`. Set with `DATABASE_URL`, or neither (embedded "
            "mode)."
        ),
        env="REDIS_URL",
    )
    database_url: str | None = setting(
        None,
        _url("postgresql", "postgres"),
        "PostgreSQL, e.g. `postgresql://user:pass@localhost/scoreboard`.",
        env="DATABASE_URL",
    )
    database_read_url: tuple[str, ...] = setting(
        (),
        _urls("postgresql", "postgres"),
        (
            "PostgreSQL read replicas for closed periods, seasons, the review queue, player"
            " history and the audit trail; several separated by commas. Writes, and the"
            " reads a write depends on, stay on `DATABASE_URL`."
        ),
        env="DATABASE_READ_URL",
    )
    db_read_max_lag_seconds: float = setting(
        5.0,
        _number_in(0.1, 3600),
        "A read replica further behind than this serves none; its reads go to the primary.",
    )
    jwt_secret: str | None = setting(
        None,
        _text,
        "HS256 key of access tokens; at least 32 bytes; required with real services.",
        env="JWT_SECRET",
        shown="generated in embedded mode",
    )
    jwt_refresh_secret: str | None = setting(
        None,
        _text,
        "HS256 key of refresh tokens; at least 32 bytes, different from `JWT_SECRET`.",
        env="JWT_REFRESH_SECRET",
        shown="generated in embedded mode",
    )
    data_dir: Path = setting(
        Path(".scoreboard"), Path, "Embedded mode's PostgreSQL data and generated secrets."
    )
    redis_prefix: str = setting(
        "sb",
        _prefix,
        (
            "Prefix of every Redis key and channel, to share one Redis between deployments "
            "(channels also carry the DB number of `REDIS_URL`, since Redis pub/sub ignores DB "
            "numbers: deployments apart by prefix or by DB never meet)."
        ),
    )
    redis_cluster: bool = setting(
        False,
        _bool,
        (
            "`true`: `REDIS_URL` names any node of a Redis Cluster, and every process runs on the "
            "cluster (each board is one hash slot, so boards spread over the masters)."
        ),
    )
    redis_wait_replicas: int = setting(
        0,
        _int_in(0, 16),
        (
            "Above 0: the answer to every score update, admin adjustment, ban, unban and season "
            "reset waits (`WAIT`, on the connection that wrote it) until this many replicas have "
            "it, for those who would rather pay latency than lose the writes a failover can lose; "
            "a write fewer replicas confirmed in time is answered 503 (it is applied: the client's "
            "retry of the same update gets its first answer). Needs a plain `redis://` URL or a "
            "cluster."
        ),
    )
    redis_wait_ms: int = setting(
        100, _int_in(1, 10_000), "How long a write waits for those replicas (1–10,000 ms)."
    )
    bcrypt_rounds: int = setting(
        12,
        _int_in(4, 31),
        "bcrypt cost (4–31); 12 is about a quarter of a second of a core per hash.",
    )
    hash_workers: int = setting(
        0,
        _int_in(0, 256),
        (
            "Threads that hash passwords (login, registration); the other CPUs keep serving "
            "everything else."
        ),
        shown="half the CPUs (at least 1)",
    )
    hash_wait_ms: int = setting(
        500,
        _int_in(1, 60_000),
        (
            "A login or registration that cannot start hashing within this long is answered 503 "
            "`SERVICE_UNAVAILABLE` with `Retry-After: 1` at once (counted in "
            "`scoreboard_password_hashes_shed_total`), instead of queueing until every client has "
            "given up."
        ),
    )
    hash_queue_limit: int = setting(
        0,
        _int_in(0, 100_000),
        "Most requests waiting for a hashing thread; more are refused the same way at once.",
        shown="`256`",
    )
    access_token_ttl: int = setting(3600, _int_in(10, 86400), "Access-token lifetime, seconds.")
    refresh_token_ttl: int = setting(
        14 * 86400,
        _int_in(60, 365 * 86400),
        "Refresh-token lifetime, and the absolute lifetime of a login session.",
        shown="`1209600` (14 days)",
    )
    action_token_ttl: int = setting(300, _int_in(1, 86400), "Action-token lifetime, seconds.")
    max_open_action_tokens: int = setting(
        5,
        _int_in(1, 10_000),
        (
            "Most action tokens one player may hold unspent on a board; asking for another "
            "is refused (429) until one is spent or expires."
        ),
    )
    action_types: Mapping[str, int] = setting(
        {"game_completion": 100},
        _action_types,
        "JSON map of action type to its maximum score increase (1 to 2^53 − 1).",
    )
    rate_limit_score_update: RateRule = setting(
        RateRule(10, 60), RateRule.parse, "Score updates per user."
    )
    rate_limit_action_token: RateRule = setting(
        RateRule(20, 60), RateRule.parse, "Action tokens per user."
    )
    rate_limit_leaderboard: RateRule = setting(
        RateRule(60, 60), RateRule.parse, "Leaderboard reads per client address."
    )
    rate_limit_leaderboard_lease: int = setting(
        32,
        _int_in(1, 1000),
        (
            "Most leaderboard reads a worker takes at once from a busy address's allowance"
            " (then admits without asking Redis, for at most a second; unused ones are given"
            " back). 1: every read is counted in Redis as it comes."
        ),
    )
    rate_limit_login: RateRule = setting(
        RateRule(10, 60),
        RateRule.parse,
        "Login attempts per username and, separately, per client address.",
    )
    rate_limit_mfa: RateRule = setting(
        RateRule(5, 60),
        RateRule.parse,
        "One-time codes tried per account (at login and when confirming an enrolment).",
    )
    admin_mfa: str | None = setting(
        None,
        _choice("required", "optional"),
        (
            "`required`: an admin without a confirmed one-time-password enrolment gets 403"
            " `MFA_REQUIRED` from every admin route (the console walks them through"
            " enrolling); `optional`: enrolment is the admin's choice. Either way an enrolled"
            " account's login needs its code."
        ),
        shown="`required` with real services, `optional` in embedded mode",
    )
    mfa_key: str | None = setting(
        None,
        _text,
        (
            "Key that encrypts the one-time-password secrets at rest; at least 32 bytes."
            " Unset: derived from `JWT_SECRET` (set it to rotate the two apart)."
        ),
        shown="derived from `JWT_SECRET`",
    )
    max_body_bytes: int = setting(
        64 * 1024,
        _int_in(256, 64 * 1024 * 1024),
        "Largest request body; larger ones get 413 as soon as the limit is passed.",
    )
    allow_registration: bool = setting(
        True, _bool, "`false` closes `POST /auth/register` (create accounts with the CLI)."
    )
    trusted_proxies: tuple[IpNetwork, ...] = setting(
        (), _networks, "Comma-separated addresses or CIDRs of your reverse proxies."
    )
    db_pool_size: int = setting(10, _int_in(1, 200), "PostgreSQL connections per process.")
    score_ceiling: int = setting(
        MAX_EXACT_SCORE,
        _int_in(1, MAX_EXACT_SCORE),
        "Largest total a player may reach; also the largest accepted `score_increase`.",
        shown="`9007199254740991` (2^53 − 1)",
    )
    anticheat_mode: str = setting(
        "enforce",
        _anticheat_mode,
        (
            "`enforce` rejects updates whose risk reaches `REJECT_AT` and flags those reaching "
            "`FLAG_AT`; `flag` accepts everything and flags; `off` judges nothing."
        ),
    )
    anticheat_pace: Mapping[str, tuple[int, int]] | None = setting(
        None,
        _pace,
        (
            "JSON object of pace window to `[flag, reject]`: the points one player may gain in "
            "any minute, 10 minutes, hour or day (`points_per_minute`, `points_per_10_minutes`, "
            "`points_per_hour`, `points_per_day`) before an update is flagged (a soft check) "
            "or rejected (a hard one); windows left out keep the default."
        ),
        shown=", ".join(f"`{name}`: `{list(limits)}`" for name, limits in PACE_DEFAULTS.items()),
    )
    anticheat_duration_slack: int = setting(
        5,
        _int_in(0, 3600),
        (
            "Seconds by which a player's claimed `action_data.time_taken`, added up, may run "
            "ahead of the wall clock (a hard check: claims of play cannot overlap)."
        ),
    )
    anticheat_time_taken: Mapping[str, str] | None = setting(
        None,
        _time_taken,
        (
            "JSON object of action type to `optional`, `required` (an update without "
            "`time_taken` is rejected) or `token` (required, and no longer than the action "
            "token's age: for games that ask for the token as the action starts)."
        ),
        shown="`optional` for every type",
    )
    anticheat_levels: Mapping[str, tuple[int, int]] | None = setting(
        None,
        _levels,
        (
            "JSON object of action type to `[lowest, highest]`: a claimed `level` outside "
            "is rejected."
        ),
        shown="any level",
    )
    anticheat_points_per_second: Mapping[str, float] | None = setting(
        None,
        _points_per_second,
        (
            "JSON object of action type to the most points per second of play, such as "
            '`{"game_completion": 10}`; types left out keep the default. The time of play is the '
            "claimed `time_taken`, or the time since the previous update when none is claimed."
        ),
        shown="each type's maximum / 20",
    )
    anticheat_min_duration_ms: int = setting(
        1000,
        _int_in(0, 3_600_000),
        (
            "Floor on a plausible time of play: a shorter claim counts as this long in the "
            "points-per-second check."
        ),
    )
    anticheat_level_bonus_percent: int = setting(
        10,
        _int_in(0, 10_000),
        "Each claimed `level` above 1 allows this much more per second, for at most 10 levels.",
    )
    anticheat_min_history: int = setting(
        20,
        _int_in(2, 1_000_000),
        (
            "Accepted updates a player needs before the outlier check compares an increase with "
            "their own history."
        ),
    )
    anticheat_max_zscore: float = setting(
        7.0,
        _number_in(0.5, 1000.0),
        (
            "An increase more than this many standard deviations above the player's own mean is an "
            "outlier."
        ),
    )
    anticheat_automation_run: int = setting(
        5,
        _int_in(2, 1_000_000),
        (
            "This many submissions in a row with the same increase and telemetry, evenly spaced, "
            "look automated."
        ),
    )
    anticheat_spacing_tolerance_ms: int = setting(
        250,
        _int_in(0, 3_600_000),
        (
            "Gaps between submissions within this much (or 10 % of the gap, the larger) count as "
            "evenly spaced."
        ),
    )
    anticheat_population_default: float = setting(
        180.0,
        _number_in(1.0, 1e12),
        (
            "Points per minute of play above which a player is flagged while a board has not "
            "yet learned its own players' paces (fewer than 100 players with ten updates and "
            "five minutes of play); after that, twice the pace of its top 1 %."
        ),
    )
    anticheat_flag_at: float = setting(
        0.5, _number_in(0, 1), "Risk from which an accepted update is flagged for review."
    )
    anticheat_reject_at: float = setting(
        0.8, _number_in(0, 1), "Risk from which `enforce` rejects an update."
    )
    graphql_introspection: bool = setting(
        True,
        _bool,
        "`false` refuses introspection queries on `/graphql` (the schema stays in the docs).",
    )
    require_device: bool = setting(
        False,
        _bool,
        (
            "`true`: a player's login must name its device (`device`; 400 without one), so a"
            " blocked device cannot be left out; admins' logins need none."
        ),
    )
    anticheat_device_players: int = setting(
        10,
        _int_in(2, 1_000_000),
        (
            "A device that this many accounts signed in from, and played from, within"
            " SCOREBOARD_ANTICHEAT_DEVICE_WINDOW_SECONDS carries a farm of accounts: it is"
            " flagged for review and its updates are judged `device_farm`."
        ),
    )
    anticheat_player_devices: int = setting(
        10,
        _int_in(2, 1_000_000),
        ("A player who plays from this many devices within the window is judged `device_hopping`."),
    )
    anticheat_device_window_seconds: int = setting(
        86_400,
        _int_in(60, 90 * 86_400),
        "The window over which players per device and devices per player are counted.",
    )
    signature_max_age_seconds: int = setting(
        300,
        _int_in(5, 86_400),
        (
            "On a board whose updates are signed by the game server: how far a signature's"
            " timestamp may be from now, either way, before it is refused as stale."
        ),
    )
    audit_retention_months: int = setting(
        0,
        _int_in(0, 1200),
        (
            "Months of the audit trail kept in PostgreSQL: the syncer drops each month's"
            " partition, whole, once the month ended this many months ago; `0` keeps all."
        ),
    )
    audit_flood_window: int = setting(
        60,
        _int_in(1, 86_400),
        (
            "Seconds of the window in which refusals by one subject (event type, player, address) "
            "are counted."
        ),
    )
    audit_flood_sample: int = setting(
        5,
        _int_in(0, 1_000_000),
        (
            "Refusals per subject and window recorded one by one; the rest become one counted "
            "record when the window ends."
        ),
    )
    live_top_n: int = setting(
        10,
        _int_in(10, 100),
        "Size of the top kept in every process and sent with each event that changes it (10–100).",
    )
    period_grace_seconds: int = setting(
        3600,
        _int_in(60, 30 * 86_400),
        (
            "How long a closed period's ranking stays in Redis after its period ends (60 s – 30 "
            "days); closed periods are read from PostgreSQL."
        ),
    )
    sync_batch_size: int = setting(
        5000,
        _int_in(1, 10_000),
        "Most stream entries the syncer persists per PostgreSQL transaction.",
    )
    sync_interval_ms: int = setting(
        250,
        _int_in(0, 60_000),
        (
            "Once caught up, the syncer lets new entries gather this long before the next "
            "transaction (fewer, larger transactions under load; the first entry after a quiet "
            "spell goes at once)."
        ),
    )
    sync_block_ms: int = setting(
        1000, _int_in(1, 60_000), "How long the syncer waits for new entries before looking again."
    )
    sync_concurrency: int = setting(
        3,
        _int_in(1, 16),
        "Batches the syncer commits at once, each in its own transaction, while it reads the next.",
    )
    sync_claim_idle_ms: int = setting(
        30_000,
        _int_in(100, 3_600_000),
        "Entries another syncer read and left unacknowledged this long are taken over (it died).",
    )
    sync_max_attempts: int = setting(
        5, _int_in(1, 1000), "Failed attempts before an entry goes to the dead-letter stream."
    )
    sync_consumer: str = setting(
        None,
        _consumer,
        (
            "This syncer's consumer name; a restarted syncer with the same name resumes its own "
            "unacknowledged entries at once."
        ),
        shown="the host name",
        factory=socket.gethostname,
    )
    reconcile_interval_ms: int = setting(
        60_000,
        _int_in(0, 86_400_000),
        (
            "How often the syncer compares the whole board with PostgreSQL plus the unsynced "
            "stream and repairs what differs (`0`: only when it sees the update sequence go back). "
            "A board too large to compare every interval at 5,000 entries a second is compared "
            "less often (a million players: every 200 s), so the syncer's CPU, averaged over "
            "time, stays flat as the board grows."
        ),
    )
    allow_eviction: bool = setting(
        False,
        _bool,
        (
            "`true` lets the service start on a Redis whose `maxmemory-policy` evicts keys (it "
            "would lose boards and tokens; for experiments only)."
        ),
    )
    sync_max_backlog: int = setting(
        100_000,
        _int_in(1, 1_000_000_000),
        (
            "Events of one board not yet persisted (lag plus pending) past which "
            "`/health/detailed` says `degraded`, naming the board."
        ),
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        _origins,
        (
            "Comma-separated origins (`https://game.example`) whose pages may open the WebSocket "
            "besides the server's own; `*` allows any. Origins are compared by scheme, host and "
            "port (`https://game.example` and `https://game.example:443` are one origin; `http://` "
            "and `https://` of one host are two). A handshake from another site's page is refused "
            "(403); clients that send no `Origin` (no browser) are not affected."
        ),
    )
    embed_origins: tuple[str, ...] = setting(
        (),
        _origins,
        (
            "Comma-separated origins whose pages may frame the embeddable live board "
            "(`/embed`) besides the server's own, and hand it a signed-in player's access "
            "token by `postMessage`; `*` lets any site frame it (tokens are still taken from "
            "listed origins only). Every other page may not be framed."
        ),
    )
    request_read_timeout_ms: int = setting(
        10_000,
        _int_in(100, 3_600_000),
        (
            "A request must arrive whole (headers and body) within this long of its first byte, "
            "and a new connection must start one within it; slower connections (slowloris) are "
            "closed. Responses (SSE, WebSockets) are not timed."
        ),
    )
    log_format: str = setting(
        "auto",
        _log_format,
        (
            "`json`: one JSON object per line (`ts`, `level`, `logger`, `message`, the request's "
            "`request_id`, and event fields); `text`: a readable line; `auto`: text on a terminal, "
            "JSON otherwise. uvicorn's lines take the same shape. No line holds a password or a "
            "token."
        ),
    )
    broadcast_interval_ms: int = setting(
        100,
        _int_in(0, 60_000),
        (
            "Live feeds: a change on a quiet board goes out at once; a burst becomes one message "
            "per interval."
        ),
    )
    ws_max_message_bytes: int = setting(
        4096,
        _int_in(64, 16 * 1024 * 1024),
        "Largest WebSocket frame a client may send (larger: closed with 1009).",
    )
    ws_max_messages_per_second: int = setting(
        20, _int_in(1, 10_000), "Client messages per second before a WebSocket is closed with 1008."
    )
    ws_ping_interval_ms: int = setting(
        20_000,
        _int_in(100, 3_600_000),
        (
            "The server pings each WebSocket this often; one that has not answered within another "
            "interval is closed."
        ),
    )
    sse_max_connections_per_ip: int = setting(
        20,
        _int_in(1, 100_000),
        "Concurrent server-sent-event streams per client address, per process.",
    )
    ws_max_subscriptions: int = setting(
        20,
        _int_in(1, 10_000),
        (
            "Rankings (board and period) one WebSocket may follow; a subscription past it is "
            "answered with an error frame (`INVALID_REQUEST`, `details.reason` "
            "`subscription_limit`) and the socket goes on with what it follows."
        ),
    )
    max_boards: int = setting(
        1000,
        _int_in(1, 1_000_000),
        (
            "Boards the server holds, `global` included; creating one more is 409 `CONFLICT` with "
            "`details.reason` `board_limit`. Creations are serialized (a PostgreSQL advisory "
            "lock), so the limit holds under concurrent requests."
        ),
    )

    @property
    def mfa_required(self) -> bool:
        "''Whether admins must enrol a one-time password before the admin routes.''"
        if self.admin_mfa is None:
            return not self.embedded
        return self.admin_mfa == "required"

    @property
    def embedded(self) -> bool:
        "''True when neither backing service is configured: run everything in-process.''"
        return self.redis_url is None and self.database_url is None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        values: dict[str, Any] = {}
        for declared in dataclasses.fields(cls):
            name = variable(declared)
            raw = env.get(name, "").strip()
            if not raw:
                continue
            try:
                values[declared.name] = declared.metadata["parse"](raw)
            except ValueError as exc:
                raise SettingsError(f"{name}: {exc} (got {raw!r})") from None
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        "''Cross-field rules; raises SettingsError with one line naming the variable.''"
        if (self.redis_url is None) != (self.database_url is None):
            missing = "REDIS_URL" if self.redis_url is None else "DATABASE_URL"
            raise SettingsError(
                f"{missing}: set both REDIS_URL and DATABASE_URL, or neither for embedded mode"
            )
        self._validate_extras()
        for name, secret in (
            ("JWT_SECRET", self.jwt_secret),
            ("JWT_REFRESH_SECRET", self.jwt_refresh_secret),
        ):
            if secret is not None and len(secret.encode()) < MIN_SECRET_BYTES:
                raise SettingsError(f"{name}: must be at least {MIN_SECRET_BYTES} bytes long")
        if self.jwt_secret is not None and self.jwt_secret == self.jwt_refresh_secret:
            raise SettingsError("JWT_REFRESH_SECRET: must differ from JWT_SECRET")
        if self.anticheat_flag_at > self.anticheat_reject_at:
            raise SettingsError(
                "SCOREBOARD_ANTICHEAT_FLAG_AT: must not be above SCOREBOARD_ANTICHEAT_REJECT_AT"
            )
        for variable, per_type in (
            ("SCOREBOARD_ANTICHEAT_POINTS_PER_SECOND", self.anticheat_points_per_second),
            ("SCOREBOARD_ANTICHEAT_TIME_TAKEN", self.anticheat_time_taken),
            ("SCOREBOARD_ANTICHEAT_LEVELS", self.anticheat_levels),
        ):
            for name in per_type or {}:
                if name not in self.action_types:
                    raise SettingsError(
                        f"{variable}: {name!r} is not an action type of SCOREBOARD_ACTION_TYPES"
                    )

    def _validate_extras(self) -> None:
        if self.mfa_key is not None and len(self.mfa_key.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(
                f"SCOREBOARD_MFA_KEY: must be at least {MIN_SECRET_BYTES} bytes long"
            )
        if self.database_read_url and self.database_url is None:
            raise SettingsError("DATABASE_READ_URL: read replicas need DATABASE_URL (the primary)")

    def pace(self) -> dict[str, tuple[int, int]]:
        """Each pace window's [flag, reject] thresholds: as set, else the default."""
        return {**PACE_DEFAULTS, **(self.anticheat_pace or {})}

    def points_per_second(self, action_types: Mapping[str, int] | None = None) -> dict[str, float]:
        """Most points per second of play per action type (of `action_types`, else the
        default board's): as set, else a twentieth of the type's maximum increase (the
        maximum in no less than twenty seconds of play: the honest players' model plays
        its best rounds at four points a second)."""
        types = self.action_types if action_types is None else action_types
        rates = {name: max(1.0, limit / 20) for name, limit in types.items()}
        chosen = self.anticheat_points_per_second or {}
        rates.update({name: rate for name, rate in chosen.items() if name in types})
        return rates

    def require_secrets(self) -> None:
        "''Only the commands that sign or check tokens (`serve`) need the JWT secrets.''"
        if self.embedded:
            return
        for name, secret in (
            ("JWT_SECRET", self.jwt_secret),
            ("JWT_REFRESH_SECRET", self.jwt_refresh_secret),
        ):
            if secret is None:
                raise SettingsError(f"{name}: required when REDIS_URL/DATABASE_URL are set")


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One line for each `SCOREBOARD_*` variable that nothing reads (a typo, most
    likely), naming the closest known one."""
    known = sorted(variable(declared) for declared in dataclasses.fields(Settings))
    lines = []
    for name in sorted(key for key in env if key.startswith("SCOREBOARD_")):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]}?" if close else ""
            lines.append(f"{name} is not a setting of this version and is ignored{hint}")
    return lines
