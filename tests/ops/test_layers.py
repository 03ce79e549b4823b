"""The package's layers: every import between packages is one the code map allows."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "scoreboard"
CODE_MAP = ROOT / "docs" / "code-map.md"


def allowed() -> dict[str, set[str]]:
    """Package -> the packages it may import, as the code map declares them."""
    text = CODE_MAP.read_text()
    layers: dict[str, set[str]] = {}
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        name = section.split("\n", 1)[0].strip()
        match = re.search(r"^May import: (.+)\.$", section, re.MULTILINE)
        assert match, f"the code map's {name} section has no 'May import' line"
        words = match.group(1)
        layers[name] = set() if words == "nothing" else {w.strip() for w in words.split(",")}
    return layers


def imports_of(path: Path) -> set[str]:
    """The scoreboard packages a module imports (type-checking imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "scoreboard" and len(parts) > 1:
                found.add(parts[1])
    return found


def packages() -> list[str]:
    return sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def test_the_code_map_describes_every_package_and_only_those() -> None:
    assert sorted(allowed()) == packages()


def test_every_import_between_packages_is_allowed_by_the_code_map() -> None:
    layers = allowed()
    wrong = []
    for package in packages():
        for module in (PACKAGE / package).rglob("*.py"):
            for used in imports_of(module) - {package} - layers[package]:
                if used in layers:
                    wrong.append(f"{module.relative_to(ROOT)} imports scoreboard.{used}")
    assert not wrong, "\n".join(wrong)


def test_the_layers_have_no_cycle() -> None:
    layers = allowed()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for used in layers[name]:
                visit(used, (*path, name))
            done.add(name)

    for name in layers:
        visit(name, ())


def test_top_level_modules_are_only_the_entry_points() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]


def test_no_symlink_in_the_repository() -> None:
    tracked = [p for p in ROOT.rglob("*") if p.is_symlink() and ".venv" not in p.parts]
    assert not [p for p in tracked if ".git" not in p.parts]


TOOL_CACHES = (".schemathesis", ".hypothesis", ".pytest_cache", ".mypy_cache", ".ruff_cache")


def test_no_tool_cache_is_committed() -> None:
    """Was: schemathesis's crash cache (`.schemathesis/default/cache/crashes`) was
    committed, so a clone replayed one machine's old failures."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert not [path for path in listed if path.split("/", 1)[0] in TOOL_CACHES]


def test_the_tests_are_laid_out_like_the_package() -> None:
    """Each test module sits in the folder of the package it tests (`tests/<package>/`;
    `tests/lua/` for the scripts on real Redis and fakeredis, `tests/clients/` for the
    client libraries of `clients/`); shared helpers stay in `tests/`."""
    tests = ROOT / "tests"
    folders = sorted(p.name for p in tests.iterdir() if (p / "__init__.py").is_file())
    assert set(folders) <= {*packages(), "lua", "clients"}, folders
    assert not list(tests.glob("test_*.py")), "a test module outside the package folders"
