"""The loader and the status codes shared between `lua/` and Python."""

from __future__ import annotations

import re

from scoreboard.scripts import ScriptStatus, load_sources, lua_dir


def test_every_status_in_lua_has_a_python_counterpart() -> None:
    declared = set()
    for path in lua_dir().glob("**/*.lua"):
        declared |= set(re.findall(r"^local S_\w+ = '(\w+)'$", path.read_text(), re.MULTILINE))
    assert declared, "no status declarations found"
    assert declared <= {status.value for status in ScriptStatus}


def test_every_script_has_a_header_naming_its_keys_and_reply() -> None:
    for path in lua_dir().glob("*.lua"):
        head = path.read_text()[:4000]
        assert "KEYS[1]" in head and "Output" in head, path.name


def test_includes_are_pasted_in() -> None:
    sources = load_sources()
    assert not re.search(r"^-- @include", "".join(sources.values()), re.MULTILINE)
    assert "local function gcra" in sources["submit_score"]
    assert set(sources) == {
        "rate_limit",
        "issue_action_token",
        "submit_score",
        "read_range",
        "read_around",
        "install_board",
    }
