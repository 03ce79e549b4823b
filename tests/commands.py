"""`scoreboard …` run as an operator runs it, in a process of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def scoreboard_command(
    args: list[str], env: dict[str, str], cwd: Path, stdin: str = "", timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoreboard", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
