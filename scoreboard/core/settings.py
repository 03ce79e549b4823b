"""Typed, frozen settings read once from the environment and passed explicitly."""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

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
    """`limit` requests per `period` seconds: a burst of `limit`, refilled evenly."""

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


@dataclass(frozen=True)
class Settings:
    redis_url: str | None = None
    database_url: str | None = None
    jwt_secret: str | None = None
    jwt_refresh_secret: str | None = None
    data_dir: Path = Path(".scoreboard")
    redis_prefix: str = "sb"
    redis_cluster: bool = False
    redis_wait_replicas: int = 0
    redis_wait_ms: int = 100
    bcrypt_rounds: int = 12
    hash_workers: int = 0  # 0: half the CPUs, at least one
    hash_wait_ms: int = 500
    hash_queue_limit: int = 0  # 0: 256
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 14 * 86400
    action_token_ttl: int = 300
    action_types: Mapping[str, int] = field(default_factory=lambda: {"game_completion": 100})
    rate_limit_score_update: RateRule = RateRule(10, 60)
    rate_limit_action_token: RateRule = RateRule(20, 60)
    rate_limit_leaderboard: RateRule = RateRule(60, 60)
    rate_limit_login: RateRule = RateRule(10, 60)
    max_body_bytes: int = 64 * 1024
    allow_registration: bool = True
    trusted_proxies: tuple[IpNetwork, ...] = ()
    db_pool_size: int = 10
    score_ceiling: int = MAX_EXACT_SCORE
    anticheat_mode: str = "enforce"
    anticheat_max_points_per_minute: int = 1000
    anticheat_duration_slack: int = 5
    # action type -> points per second of play; a type not named: its maximum / 10
    anticheat_points_per_second: Mapping[str, float] | None = None
    anticheat_min_duration_ms: int = 1000
    anticheat_level_bonus_percent: int = 10
    anticheat_min_history: int = 20
    anticheat_max_zscore: float = 5.0
    anticheat_automation_run: int = 5
    anticheat_spacing_tolerance_ms: int = 250
    anticheat_flag_at: float = 0.5
    anticheat_reject_at: float = 0.8
    audit_flood_window: int = 60
    audit_flood_sample: int = 5
    live_top_n: int = 10
    period_grace_seconds: int = 3600
    test_clock_offset_ms: int = 0
    sync_batch_size: int = 5000
    sync_interval_ms: int = 250
    sync_block_ms: int = 1000
    sync_concurrency: int = 3
    sync_claim_idle_ms: int = 30_000
    sync_max_attempts: int = 5
    sync_consumer: str = field(default_factory=socket.gethostname)
    reconcile_interval_ms: int = 60_000
    allow_eviction: bool = False
    sync_max_backlog: int = 100_000
    allowed_origins: tuple[str, ...] = ()
    request_read_timeout_ms: int = 10_000
    log_format: str = "auto"
    broadcast_interval_ms: int = 100
    ws_max_message_bytes: int = 4096
    ws_max_messages_per_second: int = 20
    ws_ping_interval_ms: int = 20_000
    sse_max_connections_per_ip: int = 20
    ws_max_subscriptions: int = 20
    max_boards: int = 1000

    @property
    def embedded(self) -> bool:
        """True when neither backing service is configured: run everything in-process."""
        return self.redis_url is None and self.database_url is None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        reader = _EnvReader(env)
        settings = cls(
            redis_url=reader.text("REDIS_URL"),
            database_url=reader.text("DATABASE_URL"),
            jwt_secret=reader.text("JWT_SECRET"),
            jwt_refresh_secret=reader.text("JWT_REFRESH_SECRET"),
            data_dir=Path(reader.text("SCOREBOARD_DATA_DIR") or ".scoreboard"),
            redis_prefix=reader.get("SCOREBOARD_REDIS_PREFIX", "sb", _prefix),
            redis_cluster=reader.get("SCOREBOARD_REDIS_CLUSTER", False, _bool),
            redis_wait_replicas=reader.get("SCOREBOARD_REDIS_WAIT_REPLICAS", 0, _int_in(0, 16)),
            redis_wait_ms=reader.get("SCOREBOARD_REDIS_WAIT_MS", 100, _int_in(1, 10_000)),
            bcrypt_rounds=reader.get("SCOREBOARD_BCRYPT_ROUNDS", 12, _int_in(4, 31)),
            hash_workers=reader.get("SCOREBOARD_HASH_WORKERS", 0, _int_in(0, 256)),
            hash_wait_ms=reader.get("SCOREBOARD_HASH_WAIT_MS", 500, _int_in(1, 60_000)),
            hash_queue_limit=reader.get("SCOREBOARD_HASH_QUEUE_LIMIT", 0, _int_in(0, 100_000)),
            access_token_ttl=reader.get("SCOREBOARD_ACCESS_TOKEN_TTL", 3600, _int_in(10, 86400)),
            refresh_token_ttl=reader.get(
                "SCOREBOARD_REFRESH_TOKEN_TTL", 14 * 86400, _int_in(60, 365 * 86400)
            ),
            action_token_ttl=reader.get("SCOREBOARD_ACTION_TOKEN_TTL", 300, _int_in(1, 86400)),
            action_types=reader.get(
                "SCOREBOARD_ACTION_TYPES", {"game_completion": 100}, _action_types
            ),
            rate_limit_score_update=reader.get(
                "SCOREBOARD_RATE_LIMIT_SCORE_UPDATE", RateRule(10, 60), RateRule.parse
            ),
            rate_limit_action_token=reader.get(
                "SCOREBOARD_RATE_LIMIT_ACTION_TOKEN", RateRule(20, 60), RateRule.parse
            ),
            rate_limit_leaderboard=reader.get(
                "SCOREBOARD_RATE_LIMIT_LEADERBOARD", RateRule(60, 60), RateRule.parse
            ),
            rate_limit_login=reader.get(
                "SCOREBOARD_RATE_LIMIT_LOGIN", RateRule(10, 60), RateRule.parse
            ),
            max_body_bytes=reader.get(
                "SCOREBOARD_MAX_BODY_BYTES", 64 * 1024, _int_in(256, 64 * 1024 * 1024)
            ),
            allow_registration=reader.get("SCOREBOARD_ALLOW_REGISTRATION", True, _bool),
            trusted_proxies=reader.get("SCOREBOARD_TRUSTED_PROXIES", (), _networks),
            db_pool_size=reader.get("SCOREBOARD_DB_POOL_SIZE", 10, _int_in(1, 200)),
            score_ceiling=reader.get(
                "SCOREBOARD_SCORE_CEILING", MAX_EXACT_SCORE, _int_in(1, MAX_EXACT_SCORE)
            ),
            anticheat_mode=reader.get("SCOREBOARD_ANTICHEAT_MODE", "enforce", _anticheat_mode),
            anticheat_max_points_per_minute=reader.get(
                "SCOREBOARD_ANTICHEAT_MAX_POINTS_PER_MINUTE", 1000, _int_in(1, MAX_EXACT_SCORE)
            ),
            anticheat_duration_slack=reader.get(
                "SCOREBOARD_ANTICHEAT_DURATION_SLACK", 5, _int_in(0, 3600)
            ),
            anticheat_points_per_second=reader.get(
                "SCOREBOARD_ANTICHEAT_POINTS_PER_SECOND", None, _points_per_second
            ),
            anticheat_min_duration_ms=reader.get(
                "SCOREBOARD_ANTICHEAT_MIN_DURATION_MS", 1000, _int_in(0, 3_600_000)
            ),
            anticheat_level_bonus_percent=reader.get(
                "SCOREBOARD_ANTICHEAT_LEVEL_BONUS_PERCENT", 10, _int_in(0, 10_000)
            ),
            anticheat_min_history=reader.get(
                "SCOREBOARD_ANTICHEAT_MIN_HISTORY", 20, _int_in(2, 1_000_000)
            ),
            anticheat_max_zscore=reader.get(
                "SCOREBOARD_ANTICHEAT_MAX_ZSCORE", 5.0, _number_in(0.5, 1000.0)
            ),
            anticheat_automation_run=reader.get(
                "SCOREBOARD_ANTICHEAT_AUTOMATION_RUN", 5, _int_in(2, 1_000_000)
            ),
            anticheat_spacing_tolerance_ms=reader.get(
                "SCOREBOARD_ANTICHEAT_SPACING_TOLERANCE_MS", 250, _int_in(0, 3_600_000)
            ),
            anticheat_flag_at=reader.get("SCOREBOARD_ANTICHEAT_FLAG_AT", 0.5, _number_in(0, 1)),
            anticheat_reject_at=reader.get("SCOREBOARD_ANTICHEAT_REJECT_AT", 0.8, _number_in(0, 1)),
            audit_flood_window=reader.get("SCOREBOARD_AUDIT_FLOOD_WINDOW", 60, _int_in(1, 86_400)),
            audit_flood_sample=reader.get(
                "SCOREBOARD_AUDIT_FLOOD_SAMPLE", 5, _int_in(0, 1_000_000)
            ),
            live_top_n=reader.get("SCOREBOARD_LIVE_TOP_N", 10, _int_in(10, 100)),
            period_grace_seconds=reader.get(
                "SCOREBOARD_PERIOD_GRACE_SECONDS", 3600, _int_in(60, 30 * 86_400)
            ),
            test_clock_offset_ms=reader.get(
                "SCOREBOARD_TEST_CLOCK_OFFSET_MS", 0, _int_in(0, 10**13)
            ),
            sync_batch_size=reader.get("SCOREBOARD_SYNC_BATCH_SIZE", 5000, _int_in(1, 10_000)),
            sync_interval_ms=reader.get("SCOREBOARD_SYNC_INTERVAL_MS", 250, _int_in(0, 60_000)),
            sync_block_ms=reader.get("SCOREBOARD_SYNC_BLOCK_MS", 1000, _int_in(1, 60_000)),
            sync_concurrency=reader.get("SCOREBOARD_SYNC_CONCURRENCY", 3, _int_in(1, 16)),
            sync_claim_idle_ms=reader.get(
                "SCOREBOARD_SYNC_CLAIM_IDLE_MS", 30_000, _int_in(100, 3_600_000)
            ),
            sync_max_attempts=reader.get("SCOREBOARD_SYNC_MAX_ATTEMPTS", 5, _int_in(1, 1000)),
            sync_consumer=reader.get("SCOREBOARD_SYNC_CONSUMER", socket.gethostname(), _consumer),
            reconcile_interval_ms=reader.get(
                "SCOREBOARD_RECONCILE_INTERVAL_MS", 60_000, _int_in(0, 86_400_000)
            ),
            allow_eviction=reader.get("SCOREBOARD_ALLOW_EVICTION", False, _bool),
            sync_max_backlog=reader.get(
                "SCOREBOARD_SYNC_MAX_BACKLOG", 100_000, _int_in(1, 1_000_000_000)
            ),
            allowed_origins=reader.get("SCOREBOARD_ALLOWED_ORIGINS", (), _origins),
            request_read_timeout_ms=reader.get(
                "SCOREBOARD_REQUEST_READ_TIMEOUT_MS", 10_000, _int_in(100, 3_600_000)
            ),
            log_format=reader.get("SCOREBOARD_LOG_FORMAT", "auto", _log_format),
            broadcast_interval_ms=reader.get(
                "SCOREBOARD_BROADCAST_INTERVAL_MS", 100, _int_in(0, 60_000)
            ),
            ws_max_message_bytes=reader.get(
                "SCOREBOARD_WS_MAX_MESSAGE_BYTES", 4096, _int_in(64, 16 * 1024 * 1024)
            ),
            ws_max_messages_per_second=reader.get(
                "SCOREBOARD_WS_MAX_MESSAGES_PER_SECOND", 20, _int_in(1, 10_000)
            ),
            ws_ping_interval_ms=reader.get(
                "SCOREBOARD_WS_PING_INTERVAL_MS", 20_000, _int_in(100, 3_600_000)
            ),
            sse_max_connections_per_ip=reader.get(
                "SCOREBOARD_SSE_MAX_CONNECTIONS_PER_IP", 20, _int_in(1, 100_000)
            ),
            ws_max_subscriptions=reader.get(
                "SCOREBOARD_WS_MAX_SUBSCRIPTIONS", 20, _int_in(1, 10_000)
            ),
            max_boards=reader.get("SCOREBOARD_MAX_BOARDS", 1000, _int_in(1, 1_000_000)),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Cross-field rules; raises SettingsError with one line naming the variable."""
        if (self.redis_url is None) != (self.database_url is None):
            missing = "REDIS_URL" if self.redis_url is None else "DATABASE_URL"
            raise SettingsError(
                f"{missing}: set both REDIS_URL and DATABASE_URL, or neither for embedded mode"
            )
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
        rates = self.anticheat_points_per_second or {}
        for name in rates:
            if name not in self.action_types:
                raise SettingsError(
                    f"SCOREBOARD_ANTICHEAT_POINTS_PER_SECOND: {name!r} is not an action type"
                    " of SCOREBOARD_ACTION_TYPES"
                )

    def points_per_second(self) -> dict[str, float]:
        """Most points per second of play per action type: as set, else a tenth of the
        type's maximum increase (the maximum in no less than ten seconds of play)."""
        rates = {name: max(1.0, limit / 10) for name, limit in self.action_types.items()}
        rates.update(self.anticheat_points_per_second or {})
        return rates

    def require_secrets(self) -> None:
        """Only the commands that sign or check tokens (`serve`) need the JWT secrets."""
        if self.embedded:
            return
        for name, secret in (
            ("JWT_SECRET", self.jwt_secret),
            ("JWT_REFRESH_SECRET", self.jwt_refresh_secret),
        ):
            if secret is None:
                raise SettingsError(f"{name}: required when REDIS_URL/DATABASE_URL are set")


# Read elsewhere than in `from_env`: a failure-injection hook of the syncer's tests.
_OTHER_VARIABLES = frozenset({"SCOREBOARD_SYNC_FAILPOINT"})


class _Recording(dict[str, str]):
    """An empty environment that notes every name asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.asked.add(key)
        return default


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One line for each `SCOREBOARD_*` variable that nothing reads (a typo, most
    likely), naming the closest known one."""
    recording = _Recording()
    Settings.from_env(recording)
    known = sorted(recording.asked | _OTHER_VARIABLES)
    lines = []
    for name in sorted(key for key in env if key.startswith("SCOREBOARD_")):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]}?" if close else ""
            lines.append(f"{name} is not a setting of this version and is ignored{hint}")
    return lines


class _EnvReader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def get(self, name: str, default: T, parse: Callable[[str], T]) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc} (got {raw!r})") from None


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
