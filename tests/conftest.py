from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from scoreboard.api.app import create_app
from scoreboard.api.services import Services
from scoreboard.core.settings import RateRule, Settings
from scoreboard.storage.keys import Keys
from tests.services_under_test import (
    IN_CI,
    free_port,
    postgres_server,
    redis_cluster,
    redis_server,
    scratch_database,
    used_services_line,
)

ACCESS_SECRET = "test-access-secret-0123456789abcdef"
REFRESH_SECRET = "test-refresh-secret-0123456789abcdef"
GENEROUS = RateRule(100_000, 60)
REPO = Path(__file__).resolve().parent.parent


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say once, at the end of the run, which Redis and PostgreSQL the tests used."""
    line = used_services_line()
    if line is not None:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    """A 3-master / 3-replica Redis Cluster for the run (tests.redis_cluster)."""
    with redis_cluster() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    with postgres_server() as admin_dsn:
        yield admin_dsn


@pytest.fixture(scope="session")
def database_url(postgres_admin: str) -> Iterator[str]:
    """One database for the run. Tests that persist scores (which a board is rebuilt
    from) use `own_database` instead."""
    with scratch_database(postgres_admin) as dsn:
        yield dsn


@pytest.fixture
def own_database(postgres_admin: str) -> Iterator[str]:
    with scratch_database(postgres_admin) as dsn:
        yield dsn


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"sbt{uuid.uuid4().hex[:10]}"
    yield prefix
    import redis as sync_redis

    client = sync_redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=Keys(prefix).pattern(), count=1000))
    if keys:
        client.delete(*keys)
    client.close()


# Both topologies: a module marked `both_topologies` runs its tests on one Redis and on
# the Redis Cluster, through `redis_target`. The suite (`make test`, CI) runs them all
# on one Redis and those also marked `cluster_in_ci` on the cluster too, a
# representative few; `--topologies=all` (`make test-cluster`) runs every one on both.
SINGLE, CLUSTER = "single", "cluster"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--topologies",
        choices=("ci", "all"),
        default="ci",
        help="both_topologies tests: all on the cluster too (all), or those marked "
        "cluster_in_ci (ci, the default)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_topologies: runs on one Redis and on the Redis Cluster (redis_target)"
    )
    config.addinivalue_line(
        "markers", "cluster_in_ci: of a both_topologies module, on the cluster in every run"
    )


def topologies_of(config: pytest.Config, test: pytest.Function | Any) -> list[str]:
    """The topologies a test runs on in this run."""
    if test.get_closest_marker("both_topologies") is None:
        return [SINGLE]
    if config.getoption("--topologies") == "all" or test.get_closest_marker("cluster_in_ci"):
        return [SINGLE, CLUSTER]
    return [SINGLE]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marked = metafunc.definition.get_closest_marker("both_topologies") is not None
    if marked and "topology" in metafunc.fixturenames:
        chosen = topologies_of(metafunc.config, metafunc.definition)
        metafunc.parametrize("topology", chosen, indirect=True)


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> str:
    """`single` or `cluster`: which Redis this test runs on."""
    return str(getattr(request, "param", SINGLE))


@pytest.fixture
def redis_target(request: pytest.FixtureRequest, redis_url: str, topology: str) -> tuple[str, bool]:
    """The Redis the `settings` name, and whether it is a cluster."""
    if topology == CLUSTER:
        return str(request.getfixturevalue("cluster_url")), True
    return redis_url, False


@pytest.fixture
def settings(redis_target: tuple[str, bool], database_url: str, redis_prefix: str) -> Settings:
    url, cluster = redis_target
    return Settings(
        redis_url=url,
        redis_cluster=cluster,
        database_url=database_url,
        jwt_secret=ACCESS_SECRET,
        jwt_refresh_secret=REFRESH_SECRET,
        redis_prefix=redis_prefix,
        bcrypt_rounds=4,
        rate_limit_login=GENEROUS,
        db_pool_size=4,
        # admins without one-time passwords (tests/auth/test_mfa.py and the console's
        # test require them)
        admin_mfa="optional",
    )


def unthrottled(settings: Settings, database_url: str, **changes: Any) -> Settings:
    """`settings` on a database of the test's own, with score updates, action tokens and
    reads never rate-limited (tests that play a lot), and `changes`."""
    return dataclasses.replace(
        settings,
        database_url=database_url,
        rate_limit_score_update=GENEROUS,
        rate_limit_action_token=GENEROUS,
        rate_limit_leaderboard=GENEROUS,
        **changes,
    )


async def add_empty_boards(services: Services, count: int, *named: str) -> None:
    """`count` boards `board-1`… and the `named` ones, each built (empty) in Redis as
    its creation leaves it, and the catalogue read again."""
    await services.pool.execute(
        "INSERT INTO boards (name, action_types) SELECT 'board-' || g, '{\"run\": 100}'"
        " FROM generate_series(1, $1::int) g",
        count,
    )
    await services.pool.executemany(
        "INSERT INTO boards (name, action_types) VALUES ($1, '{\"run\": 100}')",
        [(name,) for name in named],
    )
    names = [f"board-{index}" for index in range(1, count + 1)] + list(named)
    for offset in range(0, len(names), 1000):
        pipe = services.redis.pipeline(transaction=False)
        for name in names[offset : offset + 1000]:
            state = services.keys.board_state(name)
            pipe.hset(state, mapping={"epoch": "e0", "seq": 0, "players": 0})
        await pipe.execute()
    await services.catalog.refresh()


@pytest.fixture
def clock_offset_ms() -> int:
    """How far forward the services' clock for periods runs (a test moves it to a
    period's end)."""
    return 0


@pytest_asyncio.fixture
async def services(settings: Settings, clock_offset_ms: int) -> AsyncIterator[Services]:
    svc = await Services.open(settings, clock_offset_ms=clock_offset_ms)
    yield svc
    await svc.close()


def asgi_client(services: Services) -> httpx.AsyncClient:
    """The app in-process over `services`, as a client from 203.0.113.7."""
    app = create_app(services.settings)
    app.state.services = services
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest_asyncio.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process, sharing `services` with the test."""
    async with asgi_client(services) as http:
        yield http


@pytest_asyncio.fixture(params=["real", "fake"])
async def lua_backend(
    request: pytest.FixtureRequest, redis_url: str
) -> AsyncIterator[aioredis.Redis]:
    """Every Lua test runs against real Redis and against fakeredis: their runtimes differ."""
    client = (
        aioredis.Redis.from_url(redis_url)
        if request.param == "real"
        else fakeredis.FakeAsyncRedis()
    )
    yield client
    await client.aclose()


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SCOREBOARD_")}
    env.update(
        REDIS_URL=settings.redis_url or "",
        DATABASE_URL=settings.database_url or "",
        JWT_SECRET=settings.jwt_secret or "",
        JWT_REFRESH_SECRET=settings.jwt_refresh_secret or "",
        SCOREBOARD_REDIS_PREFIX=settings.redis_prefix,
        SCOREBOARD_BCRYPT_ROUNDS=str(settings.bcrypt_rounds),
        SCOREBOARD_RATE_LIMIT_LOGIN="100000/minute",
        SCOREBOARD_REDIS_CLUSTER="true" if settings.redis_cluster else "false",
        SCOREBOARD_ADMIN_MFA=settings.admin_mfa or "",
    )
    env.update(extra)
    return env


class RunningServer:
    """`scoreboard serve` as a real process on a free port."""

    def __init__(
        self, env: dict[str, str], cwd: Path, workers: int = 1, access_log: bool = False
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"server-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scoreboard",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                *(["--access-log"] if access_log else []),
            ],
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        terminate(self.process)
        self._log.close()


def terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def serving(
    env: dict[str, str],
    cwd: Path,
    count: int = 1,
    workers: int = 1,
    within: float = 60.0,
    access_log: bool = False,
) -> Iterator[list[RunningServer]]:
    """`count` ready server processes on one configuration, stopped afterwards."""
    servers: list[RunningServer] = []
    try:
        for _ in range(count):
            servers.append(RunningServer(env, cwd, workers, access_log))
        for server in servers:
            server.wait_ready(within)
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def real_server(settings: Settings, tmp_path: Path) -> Iterator[RunningServer]:
    with serving(server_env(settings), tmp_path) as (server,):
        yield server


# A real headless Chromium driven by Selenium (Debian's chromium and chromium-driver):
# required in CI, skipped on a machine without them.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_SECONDS = 15


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        if IN_CI:
            pytest.fail("chromium and chromedriver are required in CI", pytrace=False)
        pytest.skip("chromium or chromedriver is not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(argument)
    # the balancer test's HTTPS has a self-signed certificate; nothing else serves TLS
    options.accept_insecure_certs = True
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def page_wait(driver: Any) -> Any:
    """A wait on a page whose rows are replaced as updates arrive: a row read just as
    it was replaced is read again, not an error."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.wait import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS, ignored_exceptions=(StaleElementReferenceException,))
