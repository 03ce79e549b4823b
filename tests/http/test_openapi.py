"""The API document: every route in it, readable at /docs from assets this server
ships, and schemathesis against a real server finding nothing (no 5xx, every answer
in its schema and the envelope, valid input accepted, invalid input refused)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from scoreboard.api.app import create_app
from scoreboard.api.services import Services
from scoreboard.core.settings import Settings
from scoreboard.http.openapi import OPERATIONS, SCHEMAS, route_operations
from tests.auth_helpers import PASSWORD, create_admin
from tests.conftest import RunningServer, server_env, serving

GENEROUS = "100000/minute"
EXAMPLES = os.environ.get("SCOREBOARD_FUZZ_EXAMPLES", "10")


def test_every_route_has_an_operation_and_no_operation_is_stale() -> None:
    served = set(route_operations(create_app(Settings()).routes))
    assert served == set(OPERATIONS)


async def test_the_document_and_the_docs_page(real_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=real_server.url, timeout=10) as http:
        spec = (await http.get("/openapi.json")).json()
        assert spec["openapi"] == "3.1.0"
        paths = spec["paths"]
        assert "/v1/scores/update" in paths and "/v1/admin/flagged" in paths
        assert "/v1/ws/leaderboard" in spec["x-websockets"]
        update = paths["/v1/scores/update"]["post"]
        assert update["security"] == [{"bearer": [], "actionToken": []}]
        assert set(update["responses"]) >= {"200", "400", "401", "403", "429", "503"}
        for prefix in ("", "/v1"):
            page = await http.get(f"{prefix}/docs")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert sources and all(
                source.startswith(f"{prefix}/docs/assets/") for source in sources
            )
            assert "http://" not in page.text and "https://" not in page.text  # no CDN
            for source in sources:
                asset = await http.get(source)
                assert asset.status_code == 200 and len(asset.content) > 1000, source


def test_schemathesis_finds_nothing(settings: Settings, own_database: str, tmp_path: Path) -> None:
    """Positive and negative cases for every operation and the stateful phase, as an
    admin (re-logged in whenever a generated logout revokes the session); score updates
    with live action tokens of new players (tests/fuzz_hooks.py)."""
    import dataclasses

    env = server_env(
        dataclasses.replace(settings, database_url=own_database),
        SCOREBOARD_RATE_LIMIT_SCORE_UPDATE=GENEROUS,
        SCOREBOARD_RATE_LIMIT_ACTION_TOKEN=GENEROUS,
        SCOREBOARD_RATE_LIMIT_LEADERBOARD=GENEROUS,
        SCOREBOARD_RATE_LIMIT_LOGIN=GENEROUS,
        SCOREBOARD_BCRYPT_ROUNDS="4",
        SCOREBOARD_ANTICHEAT_MODE="off",
        SCOREBOARD_ACTION_TYPES=json.dumps({"game_completion": 2**53 - 1}),
    )
    updates = tmp_path / "updates.txt"
    with serving(env, tmp_path) as (server,):
        name = create_admin(env, tmp_path)
        config = Path(__file__).resolve().parents[1] / "schemathesis.toml"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(config),
                "run",
                f"{server.url}/openapi.json",
                "--max-examples",
                EXAMPLES,
                "--checks",
                "all",
                "--seed",
                os.environ.get("SCOREBOARD_FUZZ_SEED", "7"),
            ],
            env={
                **os.environ,
                "ADMIN_NAME": name,
                "ADMIN_PASSWORD": PASSWORD,
                "SCHEMATHESIS_HOOKS": str(Path(__file__).resolve().parents[1] / "fuzz_hooks.py"),
                "FUZZ_BASE_URL": server.url,
                "FUZZ_UPDATES_FILE": str(updates),
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
    statuses = updates.read_text().split()
    assert "200" in statuses, "no generated update was applied: the live tokens did not work"
    assert any(status.startswith("4") for status in statuses)


def test_the_error_codes_are_declared_once_and_documented() -> None:
    """The document's enum is the exception tree's codes; the API page's table lists each."""
    from scoreboard.core.errors import error_codes

    envelope = SCHEMAS["Error"]
    assert envelope["properties"]["error"]["properties"]["code"]["enum"] == error_codes()
    page = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    table = page[page.index("| code | HTTP | when |") :].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)`(?: / `([A-Z_]+)`)? \|", table, re.MULTILINE)
    documented = {code for row in rows for code in row if code}
    assert documented == set(error_codes())


def test_every_request_body_is_a_struct_of_the_contract() -> None:
    """Was: each body was written three times (the document, the route's field list,
    the validator). Now each is a Struct: the route reads it with `read_body`, and the
    document's schema is the one msgspec generates from it, with only what depends on
    the server's settings (its action types, the score ceiling) added."""
    import ast

    from scoreboard.core import contract
    from scoreboard.http.openapi import document

    settings = Settings()
    spec = document(create_app(settings).routes, settings)
    schemas = spec["components"]["schemas"]
    generated = contract.request_schemas()
    referenced = set()
    for operations in spec["paths"].values():
        for operation in operations.values():
            if "requestBody" in operation:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                referenced.add(ref.rsplit("/", 1)[1])
    assert referenced == {body.__name__ for body in contract.REQUEST_BODIES} - {"ActionData"}
    settings_dependent = {"action_type", "score_increase", "action_types", "periods", "delta"}
    for name, schema in generated.items():
        published = schemas[name]
        assert published["required" if "required" in schema else "title"] == schema.get(
            "required", name
        )
        assert published["additionalProperties"] is False
        for field, declared in schema["properties"].items():
            if field not in settings_dependent:
                assert published["properties"][field] == declared, (name, field)
    # no route reads a body any other way
    api = Path(__file__).resolve().parents[2] / "scoreboard" / "api"
    for module in api.glob("*.py"):
        calls = {
            node.func.id
            for node in ast.walk(ast.parse(module.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        }
        assert "read_object" not in calls and "parse_json" not in calls, module.name


async def test_a_body_refused_by_its_struct_names_the_field(client: httpx.AsyncClient) -> None:
    from tests.auth_helpers import bearer, issue_token, new_player

    player = await new_player(client)
    cases = {
        "action_data.level": {"score_increase": 5, "action_data": {"level": -1}},
        "action_data.speed": {"score_increase": 5, "action_data": {"speed": 1}},
        "action_data.time_taken": {"score_increase": 5, "action_data": {"time_taken": 0}},
        "action_data": {"score_increase": 5, "action_data": [1]},
        "session_id": {"score_increase": 5, "session_id": 7},
    }
    for field, body in cases.items():
        token = await issue_token(client, player["access_token"])
        answer = await client.post(
            "/v1/scores/update",
            json=body,
            headers={**bearer(player["access_token"]), "X-Action-Token": token},
        )
        assert answer.status_code == 400, (field, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "INVALID_REQUEST" and error["details"] == {"field": field}, error
        assert error["message"].startswith(f"{field}: "), error
    # a refused body spends nothing: the last token still takes a good update
    answer = await client.post(
        "/v1/scores/update",
        json={"score_increase": 5},
        headers={**bearer(player["access_token"]), "X-Action-Token": token},
    )
    assert answer.status_code == 200, answer.text
    unknown = await client.post("/v1/auth/login", json={"username": "a", "password": "b", "x": 1})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["details"] == {"missing": [], "unknown": ["x"]}


async def test_the_shared_answers_are_their_structs(
    client: httpx.AsyncClient, services: Services
) -> None:
    """The answers the document describes with a shared shape decode strictly as the
    Struct it is generated from (was: the shapes were written once in the document and
    again, by hand, in each route's dict)."""
    import msgspec

    from scoreboard.core import contract
    from scoreboard.http.openapi import document
    from tests.auth_helpers import bearer, login, new_player, new_username, submit

    settings = Settings()
    schemas = document(create_app(settings).routes, settings)["components"]["schemas"]
    for name, schema in contract.response_schemas().items():
        assert schemas[name] == schema, name

    def data(response: httpx.Response, shape: Any) -> Any:
        assert response.status_code == 200, response.text
        envelope = msgspec.json.decode(response.content)
        assert list(envelope) == ["success", "data"] and envelope["success"] is True
        return msgspec.convert(envelope["data"], shape, strict=True)

    player = await new_player(client)
    updated = data(await submit(client, player, 7), contract.ScoreUpdated)
    assert updated.new_score == 7 and updated.board == "global"
    issued = await client.post(
        "/v1/auth/action-token",
        json={"action_type": "game_completion", "session_id": "s"},
        headers=bearer(player["access_token"]),
    )
    data(issued, contract.ActionTokenIssued)
    mine = data(await client.get(f"/v1/scores/user/{player['user_id']}"), contract.PlayerScore)
    assert mine.current_score == 7
    near = await client.get(f"/v1/leaderboard/around/{player['user_id']}")
    assert data(near, contract.Around).user_id == player["user_id"]
    near = await client.get(f"/v1/boards/global/around/{player['user_id']}?period=all")
    assert data(near, contract.Around).board == "global"
    standings = await client.get(f"/v1/boards/global/players/{player['user_id']}")
    assert data(standings, contract.PlayerStandings).periods["all"].score == 7
    top = data(await client.get("/v1/leaderboard/top10"), contract.Board)
    assert any(entry.user_id == player["user_id"] for entry in top.leaderboard)
    ranking = data(await client.get("/v1/boards/global/top10"), contract.RankingPage)
    assert ranking.board == "global" and ranking.period == "all"
    data(await client.get("/v1/leaderboard?limit=5"), contract.Board)
    data(await client.get("/v1/boards"), list[contract.BoardInfo])
    again = await client.post(
        "/v1/auth/login", json={"username": player["username"], "password": PASSWORD}
    )
    assert data(again, contract.TokenPair).token_type == "Bearer"
    name = new_username()
    await services.accounts.create(name, f"{name}@example.com", PASSWORD, role="admin")
    admin = await login(client, name)
    audit = await client.get("/v1/admin/audit?limit=5", headers=bearer(admin["access_token"]))
    data(audit, contract.AuditPage)
    banned = await client.post(
        f"/v1/admin/players/{player['user_id']}/ban",
        json={"reason": "a test"},
        headers=bearer(admin["access_token"]),
    )
    assert data(banned, contract.BanChanged).banned is True
    out = await client.post("/v1/auth/logout", headers=bearer(admin["access_token"]))
    assert data(out, contract.LoggedOut).logged_out is True
