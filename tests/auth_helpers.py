"""Small helpers shared by the HTTP tests."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "correct horse battery"


def new_username() -> str:
    return f"p{uuid.uuid4().hex[:12]}"


async def register(
    http: httpx.AsyncClient, username: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    name = username or new_username()
    response = await http.post(
        "/v1/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def login(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await http.post("/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    code: str = body["error"]["code"]
    return code


async def issue_token(
    http: httpx.AsyncClient,
    access: str,
    action_type: str = "game_completion",
    session_id: str = "session-1",
) -> str:
    response = await http.post(
        "/v1/auth/action-token",
        json={"action_type": action_type, "session_id": session_id},
        headers=bearer(access),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["data"]["action_token"]
    return token


async def new_player(http: httpx.AsyncClient) -> dict[str, Any]:
    """Registered and logged in: user_id, username, access_token, refresh_token."""
    user = await register(http)
    tokens = await login(http, user["username"])
    return {**user, **tokens}


async def submit(
    http: httpx.AsyncClient, player: dict[str, Any], increase: object, **extra: object
) -> httpx.Response:
    token = await issue_token(http, player["access_token"])
    return await http.post(
        "/v1/scores/update",
        json={"score_increase": increase, **extra},
        headers={**bearer(player["access_token"]), "X-Action-Token": token},
    )


def create_admin(env: dict[str, str], cwd: Path) -> str:
    """An admin made as an operator would (`scoreboard users create --admin`, the
    password on stdin); returns the name (the password is PASSWORD)."""
    name = new_username()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scoreboard",
            "users",
            "create",
            name,
            "--email",
            f"{name}@example.com",
            "--admin",
        ],
        input=PASSWORD + "\n",
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "created admin" in done.stdout
    return name
