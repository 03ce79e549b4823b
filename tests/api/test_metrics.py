"""/metrics from prometheus-client: request counts and latency by route, outcomes by
code, and one view of every worker of `serve --workers N`."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from scoreboard.core.settings import Settings
from tests.auth_helpers import bearer, issue_token, new_player, submit
from tests.conftest import server_env, serving


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_move_as_players_play(settings: Settings, tmp_path: Path) -> None:
    env = server_env(settings, SCOREBOARD_RATE_LIMIT_SCORE_UPDATE="100000/minute")
    with serving(env, tmp_path, workers=2) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            player = await new_player(http)
            for _ in range(20):  # spread over both workers by the kernel
                await http.get("/leaderboard/top10")
            assert (await submit(http, player, 5)).status_code == 200
            token = await issue_token(http, player["access_token"])
            headers = {**bearer(player["access_token"]), "X-Action-Token": token}
            await http.post("/v1/scores/update", json={"score_increase": 500}, headers=headers)
            await http.post(
                "/v1/auth/login", json={"username": player["username"], "password": "nope-nope"}
            )
            samples = _samples((await http.get("/metrics")).text)
    top10 = _value(
        samples, "scoreboard_http_requests_total", route="top10", method="GET", status="200"
    )
    assert top10 >= 20  # every worker's requests, added up
    assert _value(samples, "scoreboard_score_updates_total", outcome="accepted") >= 1
    assert _value(samples, "scoreboard_score_updates_total", outcome="SCORE_VALIDATION_FAILED") >= 1
    assert _value(samples, "scoreboard_login_failures_total") >= 1
    assert _value(samples, "scoreboard_action_tokens_issued_total") >= 2
    assert (
        _value(samples, "scoreboard_redis_script_duration_seconds_count", script="submit_score")
        >= 2
    )
    assert (
        _value(
            samples, "scoreboard_http_request_duration_seconds_count", route="update", method="POST"
        )
        >= 2
    )
    assert _value(samples, "scoreboard_board_ready", board="global") == 1.0
    names = {name for name, _ in samples}
    assert all(
        name.startswith("scoreboard_") or name.startswith("python_") or name.startswith("process_")
        for name in names
    )
    labels = {key for _, pairs in samples for key, _ in pairs}
    assert "user_id" not in labels and "path" not in labels  # bounded label values only


async def test_the_syncers_commits_show(
    settings: Settings, own_database: str, tmp_path: Path
) -> None:
    """Batch sizes and commit latency of the syncer, scraped from a server."""
    import asyncio
    import dataclasses

    from tests.deployment import FAST_SYNC, SyncerProcess

    env = server_env(dataclasses.replace(settings, database_url=own_database), **FAST_SYNC)
    syncer = SyncerProcess(env, tmp_path)
    try:
        with serving(env, tmp_path) as (server,):
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                player = await new_player(http)
                for increase in (3, 4, 5):
                    assert (await submit(http, player, increase)).status_code == 200
                for _ in range(150):
                    text = (await http.get("/metrics")).text
                    samples = _samples(text)
                    if (
                        _value(samples, "scoreboard_sync_committed_events_total", board="global")
                        >= 3
                    ):
                        break
                    await asyncio.sleep(0.1)
    finally:
        syncer.stop()
    committed = _value(samples, "scoreboard_sync_committed_events_total", board="global")
    assert committed >= 3, syncer.log()
    commits = _value(samples, "scoreboard_sync_commit_duration_seconds_count", board="global")
    seconds = _value(samples, "scoreboard_sync_commit_duration_seconds_sum", board="global")
    assert commits >= 1 and 0 < seconds / commits < 5
    assert _value(samples, "scoreboard_sync_last_batch_events", board="global") >= 1
    # every metric the shipped alert rules and dashboard use is one the service exposes
    exposed = _family_names(text)
    for name in _metrics_named_in_deploy():
        assert name in exposed, name


def _family_names(text: str) -> set[str]:
    """Every name a query may use, families without samples yet included."""
    names = set()
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
            "summary": ["_sum", "_count"],
        }.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def _metrics_named_in_deploy() -> set[str]:
    import json
    import re

    import yaml

    deploy = Path(__file__).resolve().parents[2] / "deploy"
    rules = yaml.safe_load((deploy / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert rule["alert"].startswith("Scoreboard") and rule["annotations"]["summary"]
    dashboard = json.loads((deploy / "grafana" / "scoreboard.json").read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    names = set(re.findall(r"\bscoreboard_[a-z_]+", " ".join(exprs)))
    assert len(names) >= 15
    return names
