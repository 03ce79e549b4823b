"""The README's curl walkthrough pastes into a shell top to bottom and works."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scoreboard.core.settings import Settings
from tests.conftest import REPO, server_env, serving
from tests.services_under_test import IN_CI


def _walkthrough() -> str:
    readme = (REPO / "README.md").read_text()
    start = readme.index("## Try it with curl")
    section = readme[start : readme.index("\n## ", start + 1)]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_the_curl_walkthrough_runs_top_to_bottom(
    settings: Settings, own_database: str, tmp_path: Path
) -> None:
    """Was: logout came before playing, `AT=<access_token>` was a syntax error, and
    jq was used but not listed."""
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            if IN_CI:
                pytest.fail(f"{tool} is required in CI", pytrace=False)
            pytest.skip(f"{tool} is not installed")
    script = _walkthrough()
    assert script.startswith("API=localhost:8000/v1\n")
    env = server_env(dataclasses.replace(settings, database_url=own_database))
    with serving(env, tmp_path) as (server,):
        ran = subprocess.run(
            [
                "bash",
                "-e",
                "-u",
                "-o",
                "pipefail",
                "-c",
                script.replace("localhost:8000", server.url, 1),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert '"new_score":52' in ran.stdout and '"reason": "already_used"' in ran.stdout
    assert '{"retried_new_score":52}' in lines, "the retry line did not get the first answer"
    assert lines[-1] == '{"success":true,"data":{"logged_out":true}}'
