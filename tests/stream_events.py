"""Stream events as the syncer parses them, built directly for tests of what it
writes to PostgreSQL."""

from __future__ import annotations

import uuid

from scoreboard.sync.events import APPLIED, AUDIT, StreamEvent


def stream_event(
    user_id: str, ts_ms: int, seq: int, delta: int, kind: str = APPLIED
) -> StreamEvent:
    """An applied update of `delta` on `global` (or, with `kind=AUDIT`, a logout)."""
    audit = kind == AUDIT
    return StreamEvent(
        stream_id=f"{ts_ms}-{seq}",
        event_id=str(uuid.uuid4()),
        kind=kind,
        seq=None if audit else seq,
        board="global",
        user_id=user_id,
        delta=0 if audit else delta,
        new_score=None if audit else delta,
        old_rank=None,
        new_rank=None,
        action_type="game_completion",
        session_id="",
        token_hash="",
        token_max=None,
        token_expires_ms=None,
        risk=0.0,
        flagged=False,
        reason="",
        status=None,
        ip="203.0.113.9",
        user_agent="test",
        action_data=None,
        ts_ms=ts_ms,
        audit_type="logout" if audit else None,
        details="{}" if audit else None,
    )
