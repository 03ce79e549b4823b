"""Stream entries into rows: parsing (bytes or text, current or earlier shape) and the
audit details written out by hand, checked against the json module."""

from __future__ import annotations

import json
import uuid

import pytest

from scoreboard.sync.events import REJECTED, SCORE_COLUMNS, parse

EVENT_ID, USER_ID = str(uuid.uuid4()), str(uuid.uuid4())


def _fields(**changes: str) -> dict[str, str]:
    fields = {
        "type": "score_updated",
        "event_id": EVENT_ID,
        "seq": "12",
        "board": "global",
        "user_id": USER_ID,
        "delta": "5",
        "new_score": "40",
        "old_rank": "0",
        "new_rank": "3",
        "action_type": "game_completion",
        "session_id": "s-1",
        "token_hash": "ab" * 32,
        "token_max": "100",
        "token_expires_ms": "1700000300000",
        "risk": "0.125",
        "flagged": "0",
        "reason": "",
        "ip": "203.0.113.9",
        "user_agent": "client/1.0",
        "action_data": '{"level":3}',
        "ts": "1700000000123",
    }
    fields.update(changes)
    return fields


def _as_bytes(fields: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in fields.items()}


def test_bytes_and_text_entries_parse_alike() -> None:
    from_bytes = parse(b"1-0", _as_bytes(_fields()))
    from_text = parse("1-0", _fields())
    assert from_bytes == from_text
    assert (from_bytes.ip, from_bytes.user_agent, from_bytes.action_data) == (
        "203.0.113.9",
        "client/1.0",
        '{"level":3}',
    )
    created_at = from_bytes.score_row()[SCORE_COLUMNS.index("created_at")]
    assert created_at.isoformat() == "2023-11-14T22:13:20.123000+00:00"


def test_entries_of_the_earlier_shape_still_parse() -> None:
    fields = _fields()
    for name in ("ip", "user_agent", "action_data"):
        del fields[name]
    fields["meta"] = json.dumps(
        {"ip": "198.51.100.4", "user_agent": "old", "action_data": {"level": 2}}
    )
    event = parse("1-0", fields)
    assert (event.ip, event.user_agent, json.loads(event.action_data or "")) == (
        "198.51.100.4",
        "old",
        {"level": 2},
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"event_id": "not-a-uuid"},
        {"user_id": "x"},
        {"type": "something_else"},
        {"delta": "five"},
    ],
)
def test_malformed_entries_are_refused(changes: dict[str, str]) -> None:
    with pytest.raises((KeyError, ValueError)):
        parse("1-0", _fields(**changes))


def test_an_unusable_address_is_left_out() -> None:
    assert parse("1-0", _fields(ip="not an address")).ip is None


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"session_id": 'quote" back\\slash', "action_type": "tab\tnew\nline"},
        {"session_id": "caf\u00e9 \u2028 \U0001f600", "reason": "above_max"},
        {"type": REJECTED, "seq": "", "new_score": "", "new_rank": "", "status": "ABOVE_MAX"},
        {
            "flagged": "1",
            "reason": "points_per_second",
            "reasons": "points_per_second:0.700,automation:0.600",
            "token_wait_ms": "42",
        },
    ],
)
def test_audit_details_match_the_json_module(changes: dict[str, str]) -> None:
    event = parse("1-0", _fields(**changes))
    expected = {
        "board": event.board,
        "seq": event.seq,
        "reason": event.reason or None,
        "status": event.status,
        "action_type": event.action_type,
        "session_id": event.session_id,
        "token_hash": event.token_hash,
        "old_rank": event.old_rank,
        "new_rank": event.new_rank,
        "new_score": event.new_score,
        "token_wait_ms": event.token_wait_ms,
        "reasons": [
            {"check": check, "risk": float(risk)}
            for check, _, risk in (part.partition(":") for part in event.reasons.split(","))
        ]
        if event.reasons
        else None,
    }
    written = event.details_json()
    assert json.loads(written) == {k: v for k, v in expected.items() if v is not None}
