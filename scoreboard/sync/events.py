"""Stream entries as the syncer reads them, and their rows for PostgreSQL.

Parsing checks every field it keeps, so a malformed entry fails here (and goes to the
dead letters) instead of in the middle of a batch's transaction. Ids stay strings: the
database driver encodes a UUID from its text, which saves building objects per event.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from scoreboard.core.anticheat import parse_reasons

APPLIED = "score_updated"
REJECTED = "score_rejected"
AUDIT = "audit"  # a security event of no score: a login refused, a ban, a logout...

_UUID_RE = re.compile(rb"\A[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
_PERIOD_ID_RE = re.compile(r"\A(?:daily|weekly|monthly):[0-9W-]{4,10}\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_quote = json.encoder.encode_basestring_ascii


@dataclass(slots=True)
class StreamEvent:
    """One entry of a board's event stream; field order is the staging table's."""

    stream_id: str
    event_id: str
    kind: str
    seq: int | None
    board: str
    user_id: str
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
    ip: str | None
    user_agent: str | None
    action_data: str | None
    ts_ms: int
    reasons: str = ""  # '<check>:<risk>,...' as the script wrote them
    token_wait_ms: int | None = None
    admin_id: str | None = None  # an admin's change of a score
    audit_type: str | None = None  # AUDIT entries: their event type...
    details: str | None = None  # ...and their details (a JSON object)
    periods: str = ""  # applied updates: the period ids they counted in, comma-separated

    @property
    def period_ids(self) -> list[str]:
        return self.periods.split(",") if self.periods else []

    def record(self) -> tuple[Any, ...]:
        """Its row in the staging table (columns `COLUMNS`: the fields, then the audit
        row's event type, result, score change, risk and details)."""
        row = [getattr(self, name) for name in FIELDS]
        row[_USER_ID] = self.user_id or None
        audit = self.audit_row()
        return (*row, audit[2], audit[7], audit[6], audit[8], audit[9])

    def score_row(self) -> tuple[Any, ...]:
        """Its row in `scores` (columns `SCORE_COLUMNS`); applied events only. The
        event's id is the row's key."""
        return (
            self.event_id,
            self.event_id,
            self.stream_id,
            self.seq,
            self.board,
            self.user_id,
            self.delta,
            self.new_score,
            self.action_type,
            self.session_id,
            self.action_data,
            self.risk,
            moment(self.ts_ms),
            self.ip,
            self.user_agent,
            self.period_ids,
        )

    def token_row(self) -> tuple[Any, ...]:
        """The spent action token's row in `action_tokens` (`TOKEN_COLUMNS`), keyed by
        the event's id."""
        expires = self.token_expires_ms
        return (
            self.event_id,
            self.event_id,
            self.user_id,
            self.token_hash,
            self.board,
            self.action_type,
            self.session_id,
            self.token_max,
            None if expires is None else moment(expires),
            moment(self.ts_ms),
        )

    def _audit_details(self) -> str:
        """An AUDIT entry's details, with the board it came through."""
        given = self.details or "{}"
        if given.strip() == "{}":
            return f'{{"board":{_quote(self.board)}}}'
        return f'{{"board":{_quote(self.board)},{given.strip()[1:]}'

    def details_json(self) -> str:
        """The audit row's details: the event's context, absent values left out. Written
        out field by field (strings escaped by the json module's own encoder), which
        costs a third of encoding a dict for every event of a batch."""
        parts = [f'"board":{_quote(self.board)}']
        if self.seq is not None:
            parts.append(f'"seq":{self.seq}')
        if self.reason:
            parts.append(f'"reason":{_quote(self.reason)}')
        if self.status is not None:
            parts.append(f'"status":{_quote(self.status)}')
        parts.append(f'"action_type":{_quote(self.action_type)}')
        parts.append(f'"session_id":{_quote(self.session_id)}')
        parts.append(f'"token_hash":{_quote(self.token_hash)}')
        for name, number in (
            ("old_rank", self.old_rank),
            ("new_rank", self.new_rank),
            ("new_score", self.new_score),
            ("token_wait_ms", self.token_wait_ms),
        ):
            if number is not None:
                parts.append(f'"{name}":{number}')
        if self.admin_id:
            parts.append(f'"admin_id":{_quote(self.admin_id)}')
        if self.reasons:
            listed = ",".join(
                f'{{"check":{_quote(r.check)},"risk":{r.risk!r}}}'
                for r in parse_reasons(self.reasons)
            )
            parts.append(f'"reasons":[{listed}]')
        return "{" + ",".join(parts) + "}"

    def audit_row(self) -> tuple[Any, ...]:
        """Its row in `audit_log` (`AUDIT_COLUMNS`): the one definition of how each
        kind of entry is audited."""
        if self.kind == AUDIT:
            return (
                self.event_id,
                self.stream_id,
                self.audit_type,
                self.user_id or None,
                self.ip,
                self.user_agent,
                None,
                self.status,
                None,
                self._audit_details(),
                moment(self.ts_ms),
            )
        applied = self.kind == APPLIED
        if applied and self.admin_id:
            event_type = self.action_type  # admin_adjust | admin_remove
        else:
            event_type = "score_update" if applied else "score_rejected"
        return (
            self.event_id,
            self.stream_id,
            event_type,
            self.user_id,
            self.ip,
            self.user_agent,
            self.delta,
            "rejected" if not applied else "flagged" if self.flagged else "approved",
            self.risk,
            self.details_json(),
            moment(self.ts_ms),
        )


FIELDS = [f.name for f in fields(StreamEvent)]
_USER_ID = FIELDS.index("user_id")
COLUMNS = [
    *FIELDS,
    "audit_event_type",
    "audit_result",
    "audit_score_change",
    "audit_risk",
    "audit_details",
]
SCORE_COLUMNS = [
    "id",
    "event_id",
    "stream_id",
    "seq",
    "board",
    "user_id",
    "score_change",
    "new_score",
    "action_type",
    "session_id",
    "action_data",
    "risk_score",
    "created_at",
    "ip_address",
    "user_agent",
    "periods",
]
TOKEN_COLUMNS = [
    "id",
    "event_id",
    "user_id",
    "token_hash",
    "board",
    "action_type",
    "session_id",
    "max_score_increase",
    "expires_at",
    "used_at",
]
AUDIT_COLUMNS = [
    "event_id",
    "stream_id",
    "event_type",
    "user_id",
    "ip_address",
    "user_agent",
    "score_change",
    "validation_result",
    "risk_score",
    "details",
    "created_at",
]


@functools.lru_cache(maxsize=2048)
def moment(ms: int) -> datetime:
    """Milliseconds since the epoch as an exact UTC timestamp (cached: a batch's events
    share a few thousand distinct milliseconds, and each row of an event needs it)."""
    return _EPOCH + timedelta(milliseconds=ms)


def _optional_int(raw: dict[bytes, bytes], key: bytes) -> int | None:
    value = raw.get(key)
    return int(value) if value else None


def _uuid(value: bytes) -> str:
    if not _UUID_RE.match(value):
        raise ValueError(f"not a UUID: {value[:40]!r}")
    return value.decode()


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> str | None:
    """The address if it is one (cached: a board's events come from a limited set of
    client addresses); the database encodes it from its text."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return text


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _client(raw: dict[bytes, bytes]) -> tuple[str | None, str | None, str | None]:
    """(address, user agent, telemetry JSON) from the entry's own fields, or from the
    one `meta` JSON field of entries written by earlier versions."""
    legacy = raw.get(b"meta")
    if legacy is None:
        ip = raw.get(b"ip", b"").decode()
        agent = raw.get(b"user_agent")
        data = raw.get(b"action_data")
        return (
            _address(ip) if ip else None,
            None if agent is None else agent.decode(),
            data.decode() if data else None,
        )
    meta = json.loads(legacy or b"{}")
    if not isinstance(meta, dict):
        raise ValueError("meta is not an object")
    address, client, telemetry = meta.get("ip"), meta.get("user_agent"), meta.get("action_data")
    return (
        _address(address) if isinstance(address, str) else None,
        client if isinstance(client, str) else None,
        None if telemetry is None else json.dumps(telemetry),
    )


def parse(stream_id: Any, raw_fields: dict[Any, Any]) -> StreamEvent:
    """Raises KeyError or ValueError for an entry that is not a well-formed event."""
    raw: dict[bytes, bytes] = raw_fields
    if not raw_fields or not isinstance(next(iter(raw_fields)), bytes):  # a decoding client
        raw = {_as_bytes(k): _as_bytes(v) for k, v in raw_fields.items()}
    kind = raw[b"type"].decode()
    if kind == AUDIT:
        return _parse_audit(stream_id, raw)
    if kind not in (APPLIED, REJECTED):
        raise ValueError(f"unknown event type {kind!r}")
    ip, user_agent, action_data = _client(raw)
    status = raw.get(b"status")
    return StreamEvent(
        stream_id=stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id),
        event_id=_uuid(raw[b"event_id"]),
        kind=kind,
        seq=_optional_int(raw, b"seq"),
        board=raw[b"board"].decode(),
        user_id=_uuid(raw[b"user_id"]),
        delta=int(raw[b"delta"]),
        new_score=_optional_int(raw, b"new_score"),
        old_rank=_optional_int(raw, b"old_rank"),
        new_rank=_optional_int(raw, b"new_rank"),
        action_type=raw[b"action_type"].decode(),
        session_id=raw[b"session_id"].decode(),
        token_hash=raw[b"token_hash"].decode(),
        token_max=_optional_int(raw, b"token_max"),
        token_expires_ms=_optional_int(raw, b"token_expires_ms"),
        risk=float(raw.get(b"risk") or 0),
        flagged=raw.get(b"flagged") == b"1",
        reason=raw.get(b"reason", b"").decode(),
        status=None if status is None else status.decode(),
        ip=ip,
        user_agent=user_agent,
        action_data=action_data,
        ts_ms=int(raw[b"ts"]),
        reasons=raw.get(b"reasons", b"").decode(),
        token_wait_ms=_optional_int(raw, b"token_wait_ms"),
        admin_id=_uuid(raw[b"admin_id"]) if raw.get(b"admin_id") else None,
        periods=_periods(raw.get(b"periods", b"")),
    )


def _periods(value: bytes) -> str:
    text = value.decode()
    if text and not all(_PERIOD_ID_RE.match(pid) for pid in text.split(",")):
        raise ValueError(f"malformed period ids: {text[:80]!r}")
    return text


def _parse_audit(stream_id: Any, raw: dict[bytes, bytes]) -> StreamEvent:
    """A security event (lua/record_audit.lua): type, subject, client, result, details."""
    details = raw.get(b"details", b"{}").decode()
    if not isinstance(json.loads(details), dict):
        raise ValueError("audit details are not an object")
    user = raw.get(b"user_id", b"")
    ip, user_agent, _ = _client(raw)
    result = raw.get(b"result", b"").decode()
    return StreamEvent(
        stream_id=stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id),
        event_id=_uuid(raw[b"event_id"]),
        kind=AUDIT,
        seq=None,
        board=raw[b"board"].decode(),
        user_id=_uuid(user) if user else "",
        delta=0,
        new_score=None,
        old_rank=None,
        new_rank=None,
        action_type="",
        session_id="",
        token_hash="",
        token_max=None,
        token_expires_ms=None,
        risk=0.0,
        flagged=False,
        reason="",
        status=result or None,
        ip=ip,
        user_agent=user_agent,
        action_data=None,
        ts_ms=int(raw[b"ts"]),
        audit_type=raw[b"event_type"].decode(),
        details=details,
    )
