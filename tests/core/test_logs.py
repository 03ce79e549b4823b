"""Logs are one JSON object per line (readable text on a terminal), every request's
lines carry its id, and no password or token ever reaches one, errors included."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from scoreboard.core.logs import REQUEST_ID, JsonFormatter, TextFormatter, chosen
from scoreboard.core.settings import Settings
from tests.auth_helpers import PASSWORD, bearer, issue_token, new_player
from tests.conftest import server_env, serving


async def test_no_secret_reaches_a_log_line(settings: Settings, tmp_path: Path) -> None:
    env = server_env(settings, SCOREBOARD_LOG_FORMAT="json")
    with serving(env, tmp_path, access_log=True) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            player = await new_player(http)
            secrets = [PASSWORD, player["access_token"], player["refresh_token"]]
            token = await issue_token(http, player["access_token"])
            secrets.append(token)
            headers = {**bearer(player["access_token"]), "X-Action-Token": token}
            await http.post("/v1/scores/update", json={"score_increase": 5}, headers=headers)
            await http.post("/v1/scores/update", json={"score_increase": 6}, headers=headers)
            wrong = f"wrong-{uuid.uuid4().hex}"
            secrets.append(wrong)
            await http.post(
                "/v1/auth/login", json={"username": player["username"], "password": wrong}
            )
            await http.post(  # a malformed body that holds a password
                "/v1/auth/login",
                content=f'{{"username": "x", "password": "{wrong}", }}',
                headers={"content-type": "application/json"},
            )
            refreshed = await http.post(
                "/v1/auth/refresh", json={"refresh_token": player["refresh_token"]}
            )
            secrets.append(refreshed.json()["data"]["refresh_token"])
            await http.post(  # reuse of a spent refresh token: the session is revoked
                "/v1/auth/refresh", json={"refresh_token": player["refresh_token"]}
            )
            url = server.url.replace("http", "ws") + "/ws/leaderboard?token="
            with pytest.raises(InvalidStatus):
                async with connect(url + player["access_token"]):
                    pass  # revoked by the reuse: refused, and logged without its token
        log = server.log_path.read_text()
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert entries and all({"ts", "level", "logger", "message"} <= set(e) for e in entries)
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert access and all(e.get("request_id") for e in access)
    for secret in secrets:
        assert secret not in log
    assert "eyJ" not in log


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("scoreboard.test", logging.WARNING, "f", 1, message, None, None)
    record.board = "global"  # an `extra` field
    return record


def test_json_and_text_lines_carry_the_request_id() -> None:
    token = REQUEST_ID.set("req-1")
    try:
        line = json.loads(JsonFormatter().format(_record("the board is lost")))
        text = TextFormatter().format(_record("the board is lost"))
    finally:
        REQUEST_ID.reset(token)
    assert line["message"] == "the board is lost" and line["level"] == "warning"
    assert line["request_id"] == "req-1" and line["board"] == "global"
    assert text.endswith("scoreboard.test: the board is lost [req-1]")
    assert chosen("json") == "json" and chosen("text") == "text"
