"""The anti-cheat thresholds `submit_score.lua` judges by, and the one text format its
verdict's reasons travel in (reply, stream, PostgreSQL, admin views).

The checks themselves run inside the script (`lua/include/anticheat.lua`), on the
player's history kept next to the board, so two parallel submissions can never both
slip under a threshold.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from msgspec import UnsetType

from scoreboard.core.contract.requests import ActionRules
from scoreboard.core.settings import PACE_DEFAULTS, PACE_WINDOWS, Settings

SPACING_FRACTION = 0.1
# the points-per-second allowance grows with the claimed level up to this many levels
# above the first, so a claimed level cannot buy an unbounded rate
BONUS_LEVELS = 10


@dataclass(frozen=True)
class PaceWindow:
    """Most points accepted in any `us` microseconds before a flag and a rejection."""

    check: str
    us: int
    flag: int
    reject: int


def pace_windows(pace: dict[str, tuple[int, int]]) -> tuple[PaceWindow, ...]:
    return tuple(
        PaceWindow(name, PACE_WINDOWS[name] * 1_000_000, flag, reject)
        for name, (flag, reject) in pace.items()
    )


@dataclass(frozen=True)
class PopulationPolicy:
    """The population check: a player's pace over all their play (points per minute
    of play) against the board's players, once the player has `min_updates` accepted
    and `min_play_us` of play. Flagged above `factor` times the board's `quantile`
    pace once `min_players` are counted, above `default` until then."""

    min_updates: int = 10
    min_play_us: int = 300_000_000
    max_gap_us: int = 600_000_000
    min_players: int = 100
    quantile: float = 0.99
    factor: float = 2.0
    default: float = 180.0


@dataclass(frozen=True)
class DevicePolicy:
    """The device checks, for sessions opened from a registered device: `players`
    accounts playing from one device within `window_us` is a farm (`device_farm`),
    one account playing from `devices` devices is `device_hopping`."""

    players: int = 10
    devices: int = 10
    window_us: int = 86_400_000_000


@dataclass(frozen=True)
class AnticheatPolicy:
    """Field names are the keys the script reads (see lua/include/anticheat.lua)."""

    windows: tuple[PaceWindow, ...] = pace_windows(PACE_DEFAULTS)
    slack_us: int = 5_000_000
    time_taken: dict[str, str] = field(default_factory=dict)
    levels: dict[str, tuple[int, int]] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=lambda: {"game_completion": 5.0})
    level_bonus: float = 0.1
    bonus_levels: int = BONUS_LEVELS
    min_duration_us: int = 1_000_000
    min_history: int = 20
    z_max: float = 7.0
    run: int = 5
    spacing_us: int = 250_000
    spacing_frac: float = SPACING_FRACTION
    population: PopulationPolicy = PopulationPolicy()
    devices: DevicePolicy = DevicePolicy()
    flag: float = 0.5
    reject: float = 0.8

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        action_types: Mapping[str, int] | None = None,
        rules: Mapping[str, ActionRules] | None = None,
    ) -> AnticheatPolicy:
        """The settings' thresholds, for a board of `action_types` (else the default
        board's) with its own `rules` per action type, which come first."""
        rates = settings.points_per_second(action_types)
        time_taken = dict(settings.anticheat_time_taken or {})
        levels = dict(settings.anticheat_levels or {})
        for name, rule in (rules or {}).items():
            if not isinstance(rule.points_per_second, UnsetType):
                rates[name] = rule.points_per_second
            if not isinstance(rule.time_taken, UnsetType):
                time_taken[name] = rule.time_taken
            if not isinstance(rule.levels, UnsetType):
                levels[name] = (rule.levels[0], rule.levels[1])
        return cls(
            windows=pace_windows(settings.pace()),
            slack_us=settings.anticheat_duration_slack * 1_000_000,
            time_taken={name: rule for name, rule in time_taken.items() if rule != "optional"},
            levels=levels,
            rates=rates,
            level_bonus=settings.anticheat_level_bonus_percent / 100,
            min_duration_us=settings.anticheat_min_duration_ms * 1000,
            min_history=settings.anticheat_min_history,
            z_max=settings.anticheat_max_zscore,
            run=settings.anticheat_automation_run,
            spacing_us=settings.anticheat_spacing_tolerance_ms * 1000,
            population=PopulationPolicy(default=settings.anticheat_population_default),
            devices=DevicePolicy(
                players=settings.anticheat_device_players,
                devices=settings.anticheat_player_devices,
                window_us=settings.anticheat_device_window_seconds * 1_000_000,
            ),
            flag=settings.anticheat_flag_at,
            reject=settings.anticheat_reject_at,
        )

    @functools.cached_property
    def as_json(self) -> str:
        """The thresholds as the script's ARGV, encoded once per policy."""
        return json.dumps(asdict(self), separators=(",", ":"))


@dataclass(frozen=True)
class Reason:
    check: str
    risk: float

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "risk": self.risk}


def parse_reasons(text: str) -> list[Reason]:
    """'<check>:<risk>,...' as the script writes it, highest risk first."""
    reasons = []
    for part in text.split(","):
        check, sep, risk = part.partition(":")
        if sep:
            reasons.append(Reason(check, float(risk)))
    return reasons
