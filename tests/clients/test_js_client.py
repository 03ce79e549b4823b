"""The JavaScript client (clients/js) against a real server: its own suite
(`node --test`) with the server's address and an admin account."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scoreboard.core.settings import Settings
from tests.auth_helpers import PASSWORD, create_admin
from tests.conftest import server_env, serving
from tests.services_under_test import IN_CI

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "js"


def test_the_javascript_client_suite_passes_against_a_real_server(
    settings: Settings, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("node is required in CI", pytrace=False)
        pytest.skip("node is not installed")
    env = server_env(settings)
    admin = create_admin(env, tmp_path)
    with serving(env, tmp_path) as (server,):
        ran = subprocess.run(
            [node, "--test", "test/"],
            cwd=CLIENT,
            env={
                "PATH": os.environ.get("PATH", ""),
                "CLIENT_TEST_URL": server.url,
                "CLIENT_TEST_ADMIN": admin,
                "CLIENT_TEST_PASSWORD": PASSWORD,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    assert "# fail 0" in ran.stdout and "# pass 6" in ran.stdout, ran.stdout[-2000:]


def test_the_javascript_clients_declarations_type_check(tmp_path: Path) -> None:
    """index.d.ts and the generated types.d.ts, with a sample of their use, under tsc
    --strict (TypeScript installed on first use into ~/.cache/scoreboard/typescript)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        if IN_CI:
            pytest.fail("node and npm are required in CI", pytrace=False)
        pytest.skip("node or npm is not installed")
    cache = Path.home() / ".cache" / "scoreboard" / "typescript"
    tsc = cache / "node_modules" / ".bin" / "tsc"
    if not tsc.exists():
        cache.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run(
            [npm, "install", "--silent", "--prefix", str(cache), "typescript@5"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert installed.returncode == 0, installed.stderr[-2000:]
    checked = subprocess.run(
        [
            str(tsc),
            "--noEmit",
            "--strict",
            "--module",
            "nodenext",
            "--moduleResolution",
            "nodenext",
            "--target",
            "es2022",
            str(CLIENT / "index.d.ts"),
            str(CLIENT / "test" / "usage.ts"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-1000:]
