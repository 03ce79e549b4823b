"""The loader and the status codes shared between `lua/` and Python."""

from __future__ import annotations

import re
from typing import Any

import fakeredis

from scoreboard.core.anticheat import AnticheatPolicy
from scoreboard.core.errors import NOT_APPLIED, ScoreboardError, ServiceUnavailable
from scoreboard.core.settings import RateRule
from scoreboard.storage.keys import Keys
from scoreboard.storage.scripts import (
    ScoreSubmission,
    ScoringPolicy,
    Scripts,
    load_sources,
    lua_dir,
)
from scoreboard.storage.statuses import (
    ANSWERS,
    REFUSALS,
    SCRIPT_REFUSALS,
    ScriptStatus,
    refused,
)


def test_every_status_in_lua_has_a_python_counterpart() -> None:
    declared = set()
    for path in lua_dir().glob("**/*.lua"):
        declared |= set(re.findall(r"^local S_\w+ = '(\w+)'$", path.read_text(), re.MULTILINE))
    assert declared, "no status declarations found"
    assert declared <= {status.value for status in ScriptStatus}


def test_every_status_a_script_returns_is_an_answer_or_maps_to_one_error() -> None:
    """Was: TOKEN_EXISTS mapped to nothing (a 500), and four wrappers mapped their own."""
    unmapped = []
    for name, source in load_sources().items():
        statuses = set(re.findall(r"^local S_\w+ = '(\w+)'$", source, re.MULTILINE))
        for status in map(ScriptStatus, statuses - {"OK"}):
            answered = status in ANSWERS.get(name, frozenset())
            mapped = (name, status) in SCRIPT_REFUSALS or status in REFUSALS
            if not (answered or mapped):
                unmapped.append(f"{name}: {status}")
    assert not unmapped


def test_a_token_hash_collision_asks_the_client_to_ask_again() -> None:
    error = refused("issue_action_token", [b"TOKEN_EXISTS"])
    assert isinstance(error, ServiceUnavailable)
    assert error.details["outcome"] == NOT_APPLIED


def test_every_refusal_is_a_service_error_not_a_bug() -> None:
    replies = {"RATE_LIMITED": [b"RATE_LIMITED", b"1000", b"2000"]}
    for status in REFUSALS:
        reply = replies.get(status, [status.encode(), b"1", b"0.9", b""])
        error = refused("submit_score", reply, RateRule(1, 60))
        assert type(error) is not ScoreboardError and error.status != 500, status


def test_every_script_has_a_header_naming_its_keys_and_reply() -> None:
    for path in lua_dir().glob("*.lua"):
        head = path.read_text()[:6000]
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
        "trim_stream",
        "keep_hold",
        "release_hold",
        "claim_signature",
        "judge_submission",
        "ban_player",
        "unban_player",
        "adjust_score",
        "record_audit",
        "reset_season",
        "check_board",
        "scan_board",
        "read_standings",
    }


def _highest(source: str, name: str) -> int:
    return max((int(n) for n in re.findall(rf"{name}\[(\d+)\]", source)), default=0)


async def test_every_wrapper_passes_the_keys_and_args_its_script_reads() -> None:
    """Each wrapper builds its own KEYS from the board; none may pass fewer (or more)
    than its script's header and body use."""
    calls: dict[str, tuple[int, int]] = {}

    class Recording(Scripts):
        async def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
            calls[name] = (len(keys), len(args))
            return _REPLIES[name]

    scripts = Recording(fakeredis.FakeAsyncRedis())
    board = Keys("sbt").board()
    rule = RateRule(10, 60)
    await scripts.rate_limit(board.rate_limit("r", "u"), rule)
    await scripts.issue_action_token(
        board,
        rule,
        user_id="u",
        token_hash="h",
        session_id="s",
        action_type="a",
        max_increase=1,
        ttl_ms=1,
        max_open=10_000,
    )
    submission = ScoreSubmission("u", "n", None, None, 1, "h", None, "e", "ip", "ua", "", "f")
    policy = ScoringPolicy(rule, 10, "off", AnticheatPolicy(), 10)
    await scripts.submit_score(board, submission, policy)
    await scripts.judge_submission(
        board,
        AnticheatPolicy(),
        user_id="u",
        now_us=1,
        increase=1,
        action_type="a",
        claimed_duration_us=None,
        claimed_level=None,
        fingerprint="f",
        token_wait_us=0,
    )
    await scripts.ban_player(board, "u", 10)
    await scripts.unban_player(board, "u", 10)
    await scripts.adjust_score(
        board,
        user_id="u",
        username="n",
        delta=1,
        ceiling=10,
        top_n=10,
        event_id="e",
        admin_id="a",
        reason="r",
    )
    await scripts.record_audit(
        board,
        window_start_s=0,
        subject="",
        sample=1,
        ttl_ms=1,
        event_id="e",
        event_type="t",
        user_id=None,
        ip="",
        user_agent="",
        result="",
        details_json="{}",
    )
    await scripts.reset_season(
        board, stored_season=1, event_id="e", admin_id="a", reason="r", ip="", user_agent=""
    )
    await scripts.install_board(board, 0, "0-0", "e")
    await scripts.check_board(board)
    await scripts.scan_board(board, banned=False, cursor="0", count=10)
    await scripts.read_standings(board, [])
    await scripts.trim_stream(board, "0-0")
    await scripts.keep_hold(board, "trim", "o", 1)
    await scripts.claim_signature(board, "d", 1)
    await scripts.release_hold(board, "rebuild", "o")
    await scripts.read_range(board, 0, 1)
    await scripts.read_around(board, "u", 1)
    sources = load_sources()
    assert set(calls) == set(sources)
    for name, (keys, args) in calls.items():
        assert (keys, args) == (_highest(sources[name], "KEYS"), _highest(sources[name], "ARGV"))


_REPLIES: dict[str, Any] = {
    "rate_limit": [1, 1, 0, 0],
    "issue_action_token": ["OK", 1, 1],
    "submit_score": ["OK", 1, 1, 0, 0, "1-0", "0", 0, 1, 1, 1, "", 1, "e", "", "[]"],
    "judge_submission": ["OK", "0.000", "", "approved"],
    "ban_player": ["OK", 0, 0, 1],
    "unban_player": ["OK", 0, 0, 1],
    "adjust_score": ["OK", 1, 1, 0, 1],
    "record_audit": ["OK", 1, 0],
    "reset_season": ["OK", 1, 2, 0],
    "install_board": ["OK", 0, 0],
    "check_board": ["OK", "e"],
    "scan_board": ["OK", "0", "", [], 0, 0],
    "read_standings": ["OK", "", []],
    "trim_stream": ["OK", 0],
    "keep_hold": ["OK", 1],
    "claim_signature": ["OK", 1],
    "release_hold": ["OK", 1],
    "read_range": ["OK", 0, 0, "e"],
    "read_around": ["NOT_RANKED", 0],
}


def _header_reply(source: str, opening: str) -> list[str]:
    """The names of the reply fields a script's header lists after `opening`, each
    the first word of its item; '...' for a repeated tail."""
    header = "\n".join(line[2:].strip() for line in source.splitlines() if line.startswith("--"))
    start = header.index(opening) + len(opening)
    depth, items, current = 1, [], ""
    for char in header[start:]:
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
            if depth == 0:
                break
        if char == "," and depth == 1:
            items.append(current)
            current = ""
        else:
            current += char
    items.append(current)
    names = []
    for item in items:
        item = item.strip()
        word = re.match(r"\.\.\.|[a-z_]+", item)
        assert word, f"no name in reply item {item!r}"
        names.append(word.group(0))
    return names


def test_every_reply_shape_is_the_one_its_script_header_lists() -> None:
    """Replies are read by name; the names and their order are the headers'."""
    from scoreboard.storage.scripts.replies import ENTRY_FIELDS, SHAPES

    raw = {path.stem: path.read_text() for path in lua_dir().glob("*.lua")}
    assert set(SHAPES) == set(raw)
    for name, shape in SHAPES.items():
        opening = "{ 'OK'," if shape.status else "Output: {"
        listed = _header_reply(raw[name], opening)
        wanted = list(shape.fields) + ([*ENTRY_FIELDS, "..."] if shape.entries else [])
        assert listed == wanted, name
