"""schemathesis hooks for the contract fuzz (tests/http/test_openapi.py): every generated score
update is sent by a new player holding a live action token asked for that update's
session and action type, so the server's own checks, not a missing token, decide it.

The server is in FUZZ_BASE_URL; each update's answer status is appended to
FUZZ_UPDATES_FILE, one per line, for the test to read."""

from __future__ import annotations

import os
import uuid
from typing import Any

import requests
import schemathesis

UPDATE = "/v1/scores/update"
PASSWORD = "fuzz-password-1"


def _player(base: str) -> str:
    name = "fz" + uuid.uuid4().hex[:16]
    registered = requests.post(
        f"{base}/v1/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
        timeout=10,
    )
    registered.raise_for_status()
    login = requests.post(
        f"{base}/v1/auth/login", json={"username": name, "password": PASSWORD}, timeout=10
    )
    login.raise_for_status()
    return str(login.json()["data"]["access_token"])


def _token(base: str, access: str, body: dict[str, Any]) -> str | None:
    """A token for the update's session and action type; None when the body names ones
    a token cannot be asked for (then the update is refused for its body anyway)."""
    asked = {
        "action_type": body.get("action_type", "game_completion"),
        "session_id": body.get("session_id", "fuzz-session"),
    }
    issued = requests.post(
        f"{base}/v1/auth/action-token",
        json=asked,
        headers={"Authorization": f"Bearer {access}"},
        timeout=10,
    )
    if issued.status_code != 200:
        return None
    return str(issued.json()["data"]["action_token"])


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.operation.path != UPDATE or case.method.upper() != "POST":
        return
    headers = dict(case.headers or {})
    if "Authorization" not in headers or "X-Action-Token" not in headers:
        return  # a case about missing credentials: it is sent as generated
    base = os.environ["FUZZ_BASE_URL"]
    access = _player(base)
    body = case.body if isinstance(case.body, dict) else {}
    token = _token(base, access, body)
    headers["Authorization"] = f"Bearer {access}"
    if token is not None:
        headers["X-Action-Token"] = token
    case.headers = headers
    # real credentials, as an auth provider would set them: schemathesis then checks
    # that the same request without them, or with a wrong one, is refused
    case._has_explicit_auth = True


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    if case.operation.path == UPDATE and case.method.upper() == "POST":
        with open(os.environ["FUZZ_UPDATES_FILE"], "a") as out:
            out.write(f"{response.status_code}\n")
