"""Stream entries as the syncer reads them, and their rows for the staging table."""

from __future__ import annotations

import ipaddress
import json
import uuid
from dataclasses import dataclass, fields
from typing import Any

from scoreboard.redis_store import as_text

APPLIED = "score_updated"
REJECTED = "score_rejected"


@dataclass(frozen=True)
class StreamEvent:
    """One entry of a board's event stream; field order is the staging table's."""

    stream_id: str
    event_id: uuid.UUID
    kind: str
    seq: int | None
    board: str
    user_id: uuid.UUID
    delta: int
    new_score: int | None
    old_rank: int | None
    new_rank: int | None
    action_type: str
    session_id: str
    token_hash: str
    token_max: int | None
    token_expires_ms: int | None
    risk: float
    flagged: bool
    reason: str
    status: str | None
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    user_agent: str | None
    action_data: str | None
    ts_ms: int

    def record(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in COLUMNS)


COLUMNS = [f.name for f in fields(StreamEvent)]


def _optional_int(raw: dict[str, str], key: str) -> int | None:
    return int(raw[key]) if raw.get(key) else None


def _address(text: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(text))
    except ValueError:
        return None


def parse(stream_id: Any, raw_fields: dict[Any, Any]) -> StreamEvent:
    """Raises KeyError or ValueError for an entry that is not a well-formed event."""
    raw = {as_text(k): as_text(v) for k, v in raw_fields.items()}
    kind = raw["type"]
    if kind not in (APPLIED, REJECTED):
        raise ValueError(f"unknown event type {kind!r}")
    meta = json.loads(raw.get("meta") or "{}")
    if not isinstance(meta, dict):
        raise ValueError("meta is not an object")
    action_data = meta.get("action_data")
    return StreamEvent(
        stream_id=as_text(stream_id),
        event_id=uuid.UUID(raw["event_id"]),
        kind=kind,
        seq=_optional_int(raw, "seq"),
        board=raw["board"],
        user_id=uuid.UUID(raw["user_id"]),
        delta=int(raw["delta"]),
        new_score=_optional_int(raw, "new_score"),
        old_rank=_optional_int(raw, "old_rank"),
        new_rank=_optional_int(raw, "new_rank"),
        action_type=raw["action_type"],
        session_id=raw["session_id"],
        token_hash=raw["token_hash"],
        token_max=_optional_int(raw, "token_max"),
        token_expires_ms=_optional_int(raw, "token_expires_ms"),
        risk=float(raw.get("risk") or 0),
        flagged=raw.get("flagged") == "1",
        reason=raw.get("reason", ""),
        status=raw.get("status"),
        ip=_address(meta.get("ip")),
        user_agent=meta.get("user_agent"),
        action_data=None if action_data is None else json.dumps(action_data),
        ts_ms=int(raw["ts"]),
    )
