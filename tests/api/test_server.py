"""Against `scoreboard serve` as a real uvicorn process: server limits apply."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from scoreboard.core.settings import Settings
from tests.auth_helpers import error_code, login, new_username, register
from tests.conftest import RunningServer, server_env, serving


async def test_concurrent_refreshes_of_one_token_yield_one_success(
    real_server: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=real_server.url, timeout=30) as http:
        user = await register(http)
        for _ in range(5):
            tokens = await login(http, user["username"])
            body = {"refresh_token": tokens["refresh_token"]}
            responses = await asyncio.gather(
                *(http.post("/v1/auth/refresh", json=body) for _ in range(20))
            )
            statuses = sorted(response.status_code for response in responses)
            assert statuses == [200] + [401] * 19
            assert all(
                error_code(response) == "INVALID_TOKEN"
                for response in responses
                if response.status_code == 401
            )


def _raw_request(url: str, request: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_declared_oversized_body_is_refused_before_it_is_sent(
    real_server: RunningServer,
) -> None:
    head = (
        b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000000\r\nConnection: close\r\n\r\n{"
    )
    reply = await asyncio.to_thread(_raw_request, real_server.url, head)
    assert reply.startswith(b"HTTP/1.1 413")
    assert b'"PAYLOAD_TOO_LARGE"' in reply


async def test_chunked_oversized_body_is_refused_while_reading(
    real_server: RunningServer,
) -> None:
    async def body():  # type: ignore[no-untyped-def]
        for _ in range(2000):
            yield b" " * 65536

    async with httpx.AsyncClient(base_url=real_server.url, timeout=30) as http:
        try:
            response = await http.post(
                "/auth/login", content=body(), headers={"content-type": "application/json"}
            )
        except httpx.TransportError:
            return  # the server may close before the client finishes sending
        assert response.status_code == 413
        assert error_code(response) == "PAYLOAD_TOO_LARGE"


async def test_login_throttle_keys_on_the_socket_peer_not_x_forwarded_for(
    settings: Settings, tmp_path: Path
) -> None:
    env = server_env(settings, SCOREBOARD_RATE_LIMIT_LOGIN="3/minute")
    with serving(env, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            statuses = []
            for hop in range(5):
                response = await http.post(
                    "/auth/login",
                    json={"username": new_username(), "password": "whatever pass"},
                    headers={"X-Forwarded-For": f"198.51.100.{hop}"},
                )
                statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429, 429]


async def test_several_workers_share_one_database(settings: Settings, tmp_path: Path) -> None:
    with serving(server_env(settings), tmp_path, workers=2) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            user = await register(http)
            results = await asyncio.gather(*(login(http, user["username"]) for _ in range(10)))
    assert {tokens["user_id"] for tokens in results} == {user["user_id"]}


async def test_logout_on_one_process_is_honoured_by_another(
    settings: Settings, tmp_path: Path
) -> None:
    with serving(server_env(settings), tmp_path, count=2) as (first, second):
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=30) as a,
            httpx.AsyncClient(base_url=second.url, timeout=30) as b,
        ):
            user = await register(a)
            tokens = await login(a, user["username"])
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            token_request = {"action_type": "game_completion", "session_id": "s"}
            before = await b.post("/auth/action-token", json=token_request, headers=headers)
            assert before.status_code == 200
            assert (await a.post("/auth/logout", headers=headers)).status_code == 200
            # The other process hears of it over pub/sub: at once from Redis, within a
            # few polls of the in-process stand-in that serves laptops without Redis.
            for _ in range(100):
                after = await b.post("/auth/action-token", json=token_request, headers=headers)
                if after.status_code != 200:
                    break
                await asyncio.sleep(0.02)
    assert after.status_code == 401 and error_code(after) == "INVALID_TOKEN"
