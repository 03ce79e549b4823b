from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from scoreboard.core.errors import SettingsError
from scoreboard.core.settings import (
    RateRule,
    Settings,
    markdown_table,
    unknown_variables,
    variable,
)

SECRET_A = "a" * 32
SECRET_B = "b" * 32
REAL = {
    "REDIS_URL": "redis://r",
    "DATABASE_URL": "postgresql://p/db",
    "JWT_SECRET": SECRET_A,
    "JWT_REFRESH_SECRET": SECRET_B,
}


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings.from_env({})
    assert settings.embedded
    assert settings.data_dir == Path(".scoreboard")
    assert settings.bcrypt_rounds == 12
    assert settings.access_token_ttl == 3600
    assert settings.action_token_ttl == 300
    assert dict(settings.action_types) == {"game_completion": 100}
    assert settings.rate_limit_score_update == RateRule(10, 60)
    assert settings.rate_limit_action_token == RateRule(20, 60)
    assert settings.rate_limit_leaderboard == RateRule(60, 60)
    assert settings.allow_registration is True
    assert settings.trusted_proxies == ()
    assert settings.ws_ping_interval_ms == 20_000


def test_every_documented_variable_is_read() -> None:
    env = {
        **REAL,
        "SCOREBOARD_DATA_DIR": "/data",
        "SCOREBOARD_BCRYPT_ROUNDS": "10",
        "SCOREBOARD_ACCESS_TOKEN_TTL": "600",
        "SCOREBOARD_REFRESH_TOKEN_TTL": "7200",
        "SCOREBOARD_ACTION_TOKEN_TTL": "60",
        "SCOREBOARD_ACTION_TYPES": '{"boss_kill": 500, "lap": 20}',
        "SCOREBOARD_RATE_LIMIT_SCORE_UPDATE": "5/second",
        "SCOREBOARD_RATE_LIMIT_ACTION_TOKEN": "100/10 seconds",
        "SCOREBOARD_RATE_LIMIT_LEADERBOARD": "1000/hour",
        "SCOREBOARD_RATE_LIMIT_LOGIN": "3/minute",
        "SCOREBOARD_MAX_BODY_BYTES": "4096",
        "SCOREBOARD_ALLOW_REGISTRATION": "false",
        "SCOREBOARD_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
    }
    settings = Settings.from_env(env)
    assert not settings.embedded
    assert settings.data_dir == Path("/data")
    assert (settings.bcrypt_rounds, settings.access_token_ttl) == (10, 600)
    assert (settings.refresh_token_ttl, settings.action_token_ttl) == (7200, 60)
    assert dict(settings.action_types) == {"boss_kill": 500, "lap": 20}
    assert settings.rate_limit_score_update == RateRule(5, 1)
    assert settings.rate_limit_action_token == RateRule(100, 10)
    assert settings.rate_limit_leaderboard == RateRule(1000, 3600)
    assert settings.rate_limit_login == RateRule(3, 60)
    assert settings.max_body_bytes == 4096
    assert settings.allow_registration is False
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.1/32"),
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCOREBOARD_BCRYPT_ROUNDS", "abc"),
        ("SCOREBOARD_BCRYPT_ROUNDS", "3"),
        ("SCOREBOARD_ACCESS_TOKEN_TTL", "-5"),
        ("SCOREBOARD_ACTION_TYPES", "[1, 2]"),
        ("SCOREBOARD_ACTION_TYPES", '{"Bad Name": 5}'),
        ("SCOREBOARD_ACTION_TYPES", '{"ok": 0}'),
        ("SCOREBOARD_ACTION_TYPES", '{"ok": true}'),
        ("SCOREBOARD_RATE_LIMIT_SCORE_UPDATE", "ten per minute"),
        ("SCOREBOARD_RATE_LIMIT_LOGIN", "0/minute"),
        ("SCOREBOARD_ALLOW_REGISTRATION", "maybe"),
        ("SCOREBOARD_TRUSTED_PROXIES", "not-an-ip"),
        ("SCOREBOARD_REDIS_PREFIX", "a:b"),
        ("SCOREBOARD_ANTICHEAT_MODE", "strict"),
        ("SCOREBOARD_SCORE_CEILING", str(2**53)),
        ("SCOREBOARD_LIVE_TOP_N", "5"),
        ("SCOREBOARD_WS_PING_INTERVAL_MS", "10"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**REAL, name: value})
    assert caught.value.message.startswith(f"{name}: ")
    assert "\n" not in caught.value.message


def test_short_jwt_secret_is_refused_with_real_services() -> None:
    with pytest.raises(SettingsError, match=r"^JWT_SECRET: must be at least 32 bytes"):
        Settings.from_env({**REAL, "JWT_SECRET": "x" * 16})


def test_serving_real_services_requires_jwt_secrets() -> None:
    """Only `serve` signs tokens: the syncer, migrations and rebuilds start without."""
    env = {key: value for key, value in REAL.items() if key != "JWT_REFRESH_SECRET"}
    settings = Settings.from_env(env)
    with pytest.raises(SettingsError, match=r"^JWT_REFRESH_SECRET: required"):
        settings.require_secrets()


def test_secrets_must_differ() -> None:
    with pytest.raises(SettingsError, match="must differ"):
        Settings.from_env({**REAL, "JWT_REFRESH_SECRET": SECRET_A})


def test_half_configured_services_are_refused() -> None:
    with pytest.raises(SettingsError, match=r"^DATABASE_URL: set both"):
        Settings.from_env({"REDIS_URL": "redis://r"})


def test_scoring_settings() -> None:
    settings = Settings.from_env(
        {
            **REAL,
            "SCOREBOARD_ANTICHEAT_MODE": "flag",
            "SCOREBOARD_SCORE_CEILING": "1000000",
            "SCOREBOARD_ANTICHEAT_PACE": '{"points_per_minute": [400, 500]}',
            "SCOREBOARD_ANTICHEAT_DURATION_SLACK": "2",
            "SCOREBOARD_LIVE_TOP_N": "25",
        }
    )
    assert settings.anticheat_mode == "flag"
    assert settings.score_ceiling == 1_000_000
    assert settings.pace()["points_per_minute"] == (400, 500)
    assert settings.anticheat_duration_slack == 2
    assert settings.live_top_n == 25
    defaults = Settings.from_env({})
    assert (defaults.anticheat_mode, defaults.score_ceiling) == ("enforce", 2**53 - 1)


def test_an_unknown_variable_is_reported_with_the_closest_setting() -> None:
    """Was: a typo such as SCOREBOARD_RATELIMIT_LOGIN was silently ignored."""
    env = {"SCOREBOARD_RATELIMIT_LOGIN": "5/minute", "SCOREBOARD_BCRYPT_ROUNDS": "10"}
    assert unknown_variables(env) == [
        "SCOREBOARD_RATELIMIT_LOGIN is not a setting of this version and is ignored;"
        " did you mean SCOREBOARD_RATE_LIMIT_LOGIN?"
    ]
    assert unknown_variables({"SCOREBOARD_DATA_DIR": "x", "OTHER": "y"}) == []


def test_allowed_origins_are_origins() -> None:
    settings = Settings.from_env(
        {"SCOREBOARD_ALLOWED_ORIGINS": "https://A.example/, http://b:8080"}
    )
    assert settings.allowed_origins == ("https://a.example", "http://b:8080")
    with pytest.raises(SettingsError, match=r"^SCOREBOARD_ALLOWED_ORIGINS: 'game\.example'"):
        Settings.from_env({"SCOREBOARD_ALLOWED_ORIGINS": "game.example"})


def test_the_documented_configuration_table_is_the_declared_settings() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert markdown_table() in page, (
        "regenerate the table of docs/configuration.md: "
        "python -c 'from scoreboard.core.settings import markdown_table; print(markdown_table())'"
    )


def test_every_setting_has_a_meaning_and_a_parser() -> None:
    for declared in dataclasses.fields(Settings):
        assert declared.metadata["meaning"].endswith((".", ")")), declared.name
        assert callable(declared.metadata["parse"]), declared.name


def test_test_hooks_are_not_settings() -> None:
    names = {variable(declared) for declared in dataclasses.fields(Settings)}
    assert not {name for name in names if "TEST" in name or "FAILPOINT" in name}
