"""The README is short enough to finish, and no page points at what the repository lacks.

Was: a 769-line README, mostly internals, that referred to documents the repository does
not hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path in the repository as the pages write it: a top-level folder, then a file name
# with an extension (code spans and prose alike).
REPO_PATH = re.compile(
    r"(?<![\w/.:{-])((?:bench|deploy|docs|lua|scoreboard|tests|\.ci)/[\w./-]*\w\.(?:py|md|lua|yml|json|conf|sh|toml|sql|txt))\b"
)
# Documents that live elsewhere and must not be named.
ELSEWHERE = (
    "DESIGN.md",
    "STYLE.md",
    "RELIABILITY.md",
    "scoreboard-spec",
    "the spec ",
    "the spec's",
)


def _slug(heading: str) -> str:
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", _prose(page), re.MULTILINE)
    return {_slug(heading) for heading in headings}


def _prose(page: Path) -> str:
    """The page without its fenced code blocks (a `#` comment there is no heading)."""
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)


def test_the_readme_is_at_most_250_lines() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines"
    assert lines[0] == "# scoreboard"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page.name}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_file_a_page_names_is_in_the_repository(page: Path) -> None:
    text = page.read_text()
    missing = sorted({path for path in REPO_PATH.findall(text) if not (REPO / path).exists()})
    assert not missing, f"{page.name} names files the repository does not have: {missing}"
    named = [document for document in ELSEWHERE if document in text]
    assert not named, f"{page.name} refers to documents outside the repository: {named}"


def test_the_path_pattern_finds_what_the_pages_write() -> None:
    """The check above is only as good as its pattern."""
    text = "see `bench/RESULTS.md`, (bench/STORM.md, one run) and lua/submit_score.lua."
    assert REPO_PATH.findall(text) == ["bench/RESULTS.md", "bench/STORM.md", "lua/submit_score.lua"]
    assert REPO_PATH.findall("`sb:{board}:players` and https://x.example/docs/a.md") == []
