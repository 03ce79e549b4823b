"""A `redis-server` of a test's own, on a free loopback port with its own directory.

Tests that flush, kill, pause, fill or reconfigure Redis use one of these, never the
shared server. Without the `redis-server` binary such a test is skipped, except in CI,
where it fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.services_under_test import IN_CI, free_port


def _binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        if IN_CI:
            pytest.fail("redis-server is required in CI", pytrace=False)
        pytest.skip("redis-server is not installed")
    return found


class PrivateRedis:
    """One `redis-server` process; `args` are extra configuration options."""

    def __init__(
        self,
        directory: Path,
        *args: str,
        config: Path | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.args = args
        self.config = config  # a configuration file (then no defaults of ours)
        self.login = login  # (user, password) for our own client, where auth is required
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_as(self, user: str, password: str) -> str:
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        user, password = self.login or (None, None)
        return redis.Redis(port=self.port, socket_timeout=5, username=user, password=password)

    def start(self) -> None:
        log = (self.directory / "redis.log").open("ab")
        defaults = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        head = [str(self.config)] if self.config else defaults
        self.process = subprocess.Popen(
            [_binary(), *head, "--port", str(self.port), "--dir", str(self.directory), *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_ready()

    def wait_ready(self, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                with self.client() as probe:
                    if probe.ping():
                        return
            except redis.BusyLoadingError:
                pass
            except redis.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not start")

    def wait_for_rewrite(self, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        with self.client() as client:
            while client.info("persistence")["aof_rewrite_in_progress"]:
                assert time.monotonic() < deadline, "the AOF rewrite did not finish"
                time.sleep(0.05)

    def kill(self) -> None:
        """`kill -9`: nothing is written on the way down."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def private_redis(
    directory: Path,
    *args: str,
    config: Path | None = None,
    login: tuple[str, str] | None = None,
) -> Iterator[PrivateRedis]:
    server = PrivateRedis(directory, *args, config=config, login=login)
    server.start()
    try:
        yield server
    finally:
        server.stop()
