"""The deployment as shipped: docker-compose.yml and .env.example agree and pin what
they run, the Redis users get the passwords of .env, and the load balancer's own
config (deploy/nginx.conf, run by Debian's nginx) serves two server processes and a
syncer over HTTPS with HTTP/2 (logins, updates, unbuffered SSE) and WebSockets,
redirects plain HTTP, and passes the client's address only as it rewrote it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis
import yaml
from websockets.asyncio.client import connect

from scoreboard.core.settings import Settings
from scoreboard.ops import tls
from tests.auth_helpers import bearer, new_player, submit
from tests.conftest import page_wait, server_env, serving
from tests.deployment import FAST_SYNC, SyncerProcess
from tests.services_under_test import free_port

ROOT = Path(__file__).resolve().parents[2]
REQUIRED_RE = re.compile(r"\$\{([A-Z_]+):\?[^}]*\}")
PINNED_RE = re.compile(r"^[a-z0-9./-]+:\d+(\.\d+)+(-[a-z0-9]+)?$")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_the_whole_deployment() -> None:
    services = _compose()["services"]
    tracing = {"otel-collector", "jaeger"}  # the optional `tracing` profile
    assert set(services) == {
        "redis",
        "postgres",
        "migrate",
        "app1",
        "app2",
        "syncer",
        "tls",
        "lb",
        *tracing,
    }
    assert all(services[name]["profiles"] == ["tracing"] for name in tracing)
    assert [name for name, service in services.items() if "profiles" in service] == sorted(
        tracing, reverse=True
    )
    assert services["app1"] == services["app2"]
    assert services["app1"]["command"][0] == "serve"
    assert services["syncer"]["command"] == ["sync"] and "profiles" not in services["syncer"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("app1", "syncer"):
        assert services[name]["restart"] == "unless-stopped"
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert services["lb"]["depends_on"] == {
        "tls": {"condition": "service_completed_successfully"},
        "app1": {"condition": "service_healthy"},
        "app2": {"condition": "service_healthy"},
    }
    # HTTPS with a certificate made once (or a real one), plain HTTP redirected
    assert services["tls"]["command"][:2] == ["tls-cert", "/tls"]
    assert services["tls"]["volumes"] == ["tls:/tls"] and services["tls"]["restart"] == "no"
    assert "${SCOREBOARD_TLS_DIR:-tls}:/etc/nginx/tls:ro" in services["lb"]["volumes"]
    assert sorted(port.split(":")[-1] for port in services["lb"]["ports"]) == ["443", "80"]
    for name, service in services.items():
        image = service["image"].replace("${SCOREBOARD_VERSION:-", "").replace("}", "")
        assert PINNED_RE.match(image), (name, image)
        if name not in ("syncer", "migrate", "tls", "app1", "app2", *tracing):
            assert "test" in service["healthcheck"], name
    # traces off unless .env turns them on; then to the profile's collector, then Jaeger
    for name in ("app1", "syncer"):
        environment = services[name]["environment"]
        assert environment["OTEL_TRACES_EXPORTER"] == "${OTEL_TRACES_EXPORTER:-none}"
        assert "//otel-collector:4318}" in environment["OTEL_EXPORTER_OTLP_ENDPOINT"]
    collector = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text())
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    assert collector["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["otlp/jaeger"]
    trusted = services["app1"]["environment"]["SCOREBOARD_TRUSTED_PROXIES"]
    assert trusted == services["lb"]["networks"]["backend"]["ipv4_address"]


def test_every_secret_comes_from_the_env_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(REQUIRED_RE.findall(text))
    assert required == {
        "JWT_SECRET",
        "JWT_REFRESH_SECRET",
        "POSTGRES_PASSWORD",
        "REDIS_APP_PASSWORD",
        "REDIS_SYNC_PASSWORD",
        "REDIS_HEALTHCHECK_PASSWORD",
    }
    example = (ROOT / ".env.example").read_text()
    listed = {line.split("=")[0] for line in example.splitlines() if re.match(r"^[A-Z_]+=", line)}
    assert listed == required
    assert all(re.search(rf"^{name}=$", example, re.MULTILINE) for name in required)
    assert "change-me" not in text.replace("change-me-", "")  # no placeholder secret
    assert not re.search(r"(SECRET|PASSWORD): [^$\s]", text)


def test_the_image_is_slim_non_root_and_without_embedded_stores() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert len(stages) == 2 and all(PINNED_RE.match(s) and "slim" in s for s in stages)
    assert re.search(r"^USER scoreboard$", dockerfile, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM$", dockerfile, re.MULTILINE)
    assert "org.opencontainers.image.title" in dockerfile
    assert "[embedded]" not in dockerfile and "-e " not in dockerfile


def test_redis_users_take_the_passwords_of_the_env_file(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "REDIS_APP_PASSWORD": "app-from-env",
        "REDIS_SYNC_PASSWORD": "sync-from-env",
        "REDIS_HEALTHCHECK_PASSWORD": "check-from-env",
    }
    rendered = tmp_path / "redis.conf"
    script = ROOT / "deploy" / "render-redis-conf.sh"
    subprocess.run(
        ["sh", str(script), str(ROOT / "redis.conf"), str(rendered)], env=env, check=True
    )
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", str(rendered), "--port", str(port), "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        for user, password in (
            ("scoreboard-app", "app-from-env"),
            ("healthcheck", "check-from-env"),
        ):
            client = redis.Redis(port=port, username=user, password=password)
            for _ in range(50):
                try:
                    assert client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.1)
            client.close()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(
                port=port, username="scoreboard-app", password="change-me-app-password"
            ).ping()
    finally:
        server.terminate()
        server.wait()
    unset = {k: v for k, v in env.items() if k != "REDIS_SYNC_PASSWORD"}
    refused = subprocess.run(
        ["sh", str(script), str(ROOT / "redis.conf"), str(tmp_path / "x.conf")],
        env=unset,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "REDIS_SYNC_PASSWORD" in refused.stderr


# -- the load balancer, for real ---------------------------------------------------------


def _user() -> str:
    """Workers as this user (root in CI), so they can use the test's temp directory."""
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (CI installs Debian's package)")
        pytest.skip("nginx is not installed (apt install nginx)")
    return found


@dataclasses.dataclass(frozen=True)
class Balancer:
    url: str  # https://127.0.0.1:port
    plain_url: str  # its plain HTTP side
    trusted_file: Path  # the balancer's self-signed certificate

    @property
    def trusted(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.trusted_file)


@pytest.fixture
def balanced(settings: Settings, own_database: str, tmp_path: Path) -> Iterator[Balancer]:
    """The compose deployment's processes on loopback: two servers and a syncer behind
    the shipped nginx config, with a certificate made as the compose `tls` service
    makes it."""
    nginx = _nginx()
    env = server_env(
        dataclasses.replace(settings, database_url=own_database),
        **FAST_SYNC,
        SCOREBOARD_TRUSTED_PROXIES="127.0.0.1",
        SCOREBOARD_BROADCAST_INTERVAL_MS="50",
    )
    syncer = SyncerProcess(env, tmp_path)
    with serving(env, tmp_path, count=2) as servers:
        port, plain_port = free_port(), free_port()
        assert tls.self_signed(tmp_path / "tls", ["localhost", "127.0.0.1"])
        conf = (ROOT / "deploy" / "nginx.conf").read_text()
        for shipped, local in (
            ("server app1:8000", f"server 127.0.0.1:{servers[0].port}"),
            ("server app2:8000", f"server 127.0.0.1:{servers[1].port}"),
            ("listen 80;", f"listen 127.0.0.1:{plain_port};"),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;"),
            ("/etc/nginx/tls/", f"{tmp_path}/tls/"),
        ):
            assert shipped in conf, shipped
            conf = conf.replace(shipped, local)
        (tmp_path / "nginx.conf").write_text(conf)
        (tmp_path / "logs").mkdir()
        log = (tmp_path / "nginx.log").open("wb")
        process = subprocess.Popen(
            [
                nginx,
                "-p",
                str(tmp_path),
                "-c",
                str(tmp_path / "nginx.conf"),
                "-g",
                f"daemon off; pid {tmp_path}/nginx.pid; user {_user()};",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        balancer = Balancer(
            url=f"https://127.0.0.1:{port}",
            plain_url=f"http://127.0.0.1:{plain_port}",
            trusted_file=tmp_path / "tls" / tls.CERTIFICATE,
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    answer = httpx.get(f"{balancer.url}/health", timeout=1, verify=balancer.trusted)
                    if answer.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((tmp_path / "nginx.log").read_text())
                time.sleep(0.1)
            yield balancer
        finally:
            process.terminate()
            process.wait(timeout=10)
            log.close()
            syncer.stop()


async def test_the_load_balancer_serves_the_whole_flow(
    balanced: Balancer, settings: Settings, own_database: str
) -> None:
    url = balanced.url
    # the client comes from 127.0.0.2 and claims another address: only what nginx saw
    # (and wrote into X-Forwarded-For) reaches the servers. It speaks HTTP/2 over TLS.
    transport = httpx.AsyncHTTPTransport(
        local_address="127.0.0.2", http2=True, verify=balanced.trusted
    )
    async with httpx.AsyncClient(base_url=url, timeout=30, transport=transport) as http:
        player, watcher = await new_player(http), await new_player(http)
        assert (await http.get("/health")).http_version == "HTTP/2"
        refused = await http.post(
            "/v1/auth/login",
            json={"username": player["username"], "password": "wrong password"},
            headers={"X-Forwarded-For": "203.0.113.99"},
        )
        assert refused.status_code == 401
        # WebSocket upgrades are HTTP/1.1, on the same TLS port
        ws_url = (
            url.replace("https://", "wss://") + f"/ws/leaderboard?token={watcher['access_token']}"
        )
        async with connect(ws_url, ssl=balanced.trusted) as ws:
            await ws.send(json.dumps({"type": "subscribe_leaderboard", "data": {}}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert first["type"] == "leaderboard_update"
            async with http.stream("GET", "/sse/leaderboard") as stream:
                assert stream.http_version == "HTTP/2"
                lines = stream.aiter_lines()

                async def next_data() -> dict[str, Any]:
                    async for line in lines:
                        if line.startswith("data:"):
                            data: dict[str, Any] = json.loads(line[5:])
                            return data
                    raise AssertionError("the stream ended")

                await asyncio.wait_for(next_data(), 5)
                started = time.monotonic()
                updated = await submit(http, player, 21)
                assert updated.status_code == 200, updated.text
                assert updated.http_version == "HTTP/2"
                sse = await asyncio.wait_for(next_data(), 2)
                assert time.monotonic() - started < 2  # not held in a proxy buffer
                assert sse["updated_user"]["user_id"] == player["user_id"]
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if message["type"] == "leaderboard_update" and message["data"]["updated_user"]:
                    break
            assert message["data"]["updated_user"]["user_id"] == player["user_id"]
        top = await http.get("/v1/leaderboard/top10", headers=bearer(player["access_token"]))
        assert top.json()["data"]["leaderboard"][0]["score"] == 21
    # the syncer persists what was played through the balancer, and the refused login
    # with the address nginx saw
    conn = await asyncpg.connect(own_database)
    try:
        for _ in range(100):
            score = await conn.fetchval(
                "SELECT current_score FROM users WHERE id = $1", player["user_id"]
            )
            addresses = await conn.fetch(
                "SELECT host(ip_address) AS ip FROM audit_log WHERE event_type = 'login_failed'"
            )
            if score == 21 and addresses:
                break
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    assert [row["ip"] for row in addresses] == ["127.0.0.2"]
    assert score == 21


def test_plain_http_is_redirected_to_https_except_the_health_probe(
    balanced: Balancer,
) -> None:
    with httpx.Client(base_url=balanced.plain_url, timeout=10) as plain:
        assert plain.get("/health").json()["data"]["status"] == "ok"
        for method in ("GET", "POST"):
            moved = plain.request(method, "/v1/leaderboard/top10?limit=3")
            # 308 keeps the method and the body
            assert moved.status_code == 308
            assert moved.headers["location"] == "https://127.0.0.1/v1/leaderboard/top10?limit=3"
    # curl, as an operator would try it: HTTP/2 negotiated over TLS
    spoken = subprocess.run(
        [
            "curl",
            "--http2",
            "-sS",
            "--cacert",
            str(balanced.trusted_file),
            "-o",
            "/dev/null",
            "-w",
            "%{http_version}",
            f"{balanced.url}/health",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    assert spoken.stdout == "2"


async def test_the_live_page_follows_the_board_over_https_and_http2(
    balanced: Balancer, browser: Any
) -> None:
    """A browser on the page through the balancer: the page and its SSE feed over
    HTTP/2 with TLS, rows as updates arrive."""
    rows = "[...document.querySelectorAll('#board tr[data-user-id]')].map(r => r.dataset.userId)"
    browser.get(f"{balanced.url}/")
    wait = page_wait(browser)
    wait.until(
        lambda d: d.execute_script("return document.getElementById('status').className") == "live"
    )
    transport = httpx.AsyncHTTPTransport(http2=True, verify=balanced.trusted)
    async with httpx.AsyncClient(base_url=balanced.url, timeout=30, transport=transport) as http:
        player = await new_player(http)
        assert (await submit(http, player, 12)).status_code == 200
    wait.until(lambda d: player["user_id"] in d.execute_script(f"return {rows}"))
    protocols = browser.execute_script(
        "return performance.getEntriesByType('resource').concat("
        "performance.getEntriesByType('navigation')).map(e => [e.name, e.nextHopProtocol])"
    )
    # the page and what it loaded (a feed still open is not listed until it ends)
    assert protocols and all(protocol == "h2" for _, protocol in protocols), protocols
