"""/metrics from prometheus-client: request counts and latency by route, outcomes by
code, and one view of every worker of `serve --workers N`."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from scoreboard.settings import Settings
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
