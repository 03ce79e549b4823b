"""A PostgreSQL of a test's own (`initdb` as the `postgres` user, a free loopback port,
its own directory), and streaming replicas of it (`pg_basebackup -R`).

Tests that stop, pause or reconfigure PostgreSQL use one of these, never the shared
server. Without PostgreSQL's binaries such a test is skipped, except in CI, where it
fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.services_under_test import IN_CI, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def binaries() -> Path:
    """Where initdb, pg_ctl and pg_basebackup are; a skip (a failure in CI) without them."""
    if PG_BIN.is_dir():
        return PG_BIN
    found = shutil.which("initdb")
    if found is None:
        if IN_CI:
            pytest.fail("PostgreSQL's initdb is required in CI", pytrace=False)
        pytest.skip("PostgreSQL's initdb is not installed")
    return Path(found).parent


def _as_postgres(*command: str) -> list[str]:
    """Run as the `postgres` user when this is root (PostgreSQL refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


class PrivatePostgres:
    """One server; `options` are extra `-c name=value` settings."""

    def __init__(self, directory: Path, *options: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.options = options
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.binary = PG_BIN

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def _prepare(self) -> None:
        self.binary = binaries()
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for parent in self.directory.parents:  # a temporary directory is root's alone
                mode = parent.stat().st_mode & 0o7777
                if mode & 0o005 != 0o005:
                    parent.chmod(mode | 0o755)
            shutil.chown(self.directory, "postgres", "postgres")

    def _run(self, *command: str) -> None:
        subprocess.run(_as_postgres(*command), check=True, capture_output=True)

    def start(self) -> None:
        """A new cluster, started."""
        self._prepare()
        self._run(str(self.binary / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8")  # fmt: skip
        self.resume()

    def replica(self, directory: Path) -> PrivatePostgres:
        """A streaming replica of this server, started (a base backup with `-R`)."""
        replica = PrivatePostgres(directory, *self.options)
        replica._prepare()
        replica._run(str(replica.binary / "pg_basebackup"), "-h", "127.0.0.1",
                     "-p", str(self.port), "-U", "postgres", "-D", str(replica.data),
                     "-R", "-X", "stream", "-c", "fast")  # fmt: skip
        replica.resume()
        return replica

    def resume(self) -> None:
        """Start (again) on the same port and directory."""
        options = " ".join(
            [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-k {self.directory}"]
            + [f"-c {option}" for option in self.options]
        )
        self._run(str(self.binary / "pg_ctl"), "-D", str(self.data), "-o", options, "-w",
                  "-l", str(self.directory / "log"), "start")  # fmt: skip

    def stop(self) -> None:
        subprocess.run(
            _as_postgres(str(self.binary / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                         "stop"),
            capture_output=True,
        )  # fmt: skip

    def cpu_seconds(self) -> float:
        """The server's CPU so far: the postmaster's own and that of every backend it
        has reaped (a closed connection's backend counts too)."""
        pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime: fields 14-17 of stat(5), 11-14 after the name
        return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
