"""One batch of events into PostgreSQL, in one transaction.

Every row carries its event id under a unique constraint, so a batch replayed after a
crash inserts nothing twice. A player's totals are PostgreSQL's own: they move only by
the increases of the rows actually inserted, never to the total Redis reported, so a
Redis that lost updates (an AOF rolled back, a board evicted) cannot write its damage
here. The last applied update's sequence and stream id move only forward; the
sequence keeps the tie order a rebuilt board needs.

Two ways in. A batch read from the stream for the first time cannot have been persisted
before (persisting follows delivery), so `persist_fresh` copies it straight into the
tables; should that meet an event id already there after all (the group was recreated,
say), the unique constraint aborts the transaction and the caller replays the batch
through `persist_batch`: a staging table and `ON CONFLICT DO NOTHING`, which is what
every redelivered batch takes. Either way the players' rows are updated last and in id
order, so concurrent batches hold those row locks briefly and never deadlock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from scoreboard.storage.keys import DEFAULT_BOARD
from scoreboard.sync.events import (
    APPLIED,
    AUDIT,
    AUDIT_COLUMNS,
    COLUMNS,
    SCORE_COLUMNS,
    TOKEN_COLUMNS,
    StreamEvent,
    moment,
)

SEASON_RESET = "season_reset"  # an audit entry of the board's stream: a season ended

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS sync_staging (
  stream_id text, event_id uuid, kind text, seq bigint, board text, user_id uuid,
  delta bigint, new_score bigint, old_rank bigint, new_rank bigint, action_type text,
  session_id text, token_hash text, token_max bigint, token_expires_ms bigint,
  risk float8, flagged boolean, reason text, status text, ip inet, user_agent text,
  action_data jsonb, ts_ms bigint, reasons text, token_wait_ms bigint, admin_id uuid,
  audit_type text, details text, periods text, audit_event_type text, audit_result text,
  audit_score_change bigint, audit_risk float8, audit_details jsonb
) ON COMMIT DELETE ROWS
"""

# an event's moment, exactly as `moment()` makes it for a copied row: the unique keys
# that keep a replayed event out include the partition column, created_at
_AT = "(to_timestamp(ts_ms / 1000) + (ts_ms % 1000) * interval '1 millisecond')"

_SCORES = f"""
INSERT INTO scores (id, event_id, stream_id, seq, board, user_id, score_change, new_score,
                    action_type, session_id, action_data, risk_score, created_at,
                    ip_address, user_agent, periods)
SELECT event_id, event_id, stream_id, seq, board, user_id, delta, new_score, action_type,
       session_id, action_data, risk, {_AT}, ip, user_agent,
       coalesce(string_to_array(nullif(periods, ''), ','), '{{}}')
FROM sync_staging WHERE kind = 'score_updated'
ON CONFLICT (id, created_at) DO NOTHING
RETURNING event_id::text
"""  # noqa: S608 (constant text)

_CLEAR_STAGING = "DELETE FROM sync_staging"

# the board whose all-time figures the spec's users.current_score and total_score show
USERS_SHOW = DEFAULT_BOARD

# Every board's all-time totals, and every board's period totals: upserted in key
# order, so two batches touching the same players queue instead of deadlocking. The
# same statement moves the spec's users.current_score and total_score by the increases
# of the board they show ($6): one path for every board, and no second write of them.
_BOARD_SCORES = """
WITH upserted AS (
  INSERT INTO board_scores AS b (board, user_id, score, last_event_seq, updated_at)
  SELECT board, user_id, gained, last_seq, to_timestamp(ts_ms / 1000.0)
  FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::bigint[], $5::bigint[])
    AS t(board, user_id, gained, last_seq, ts_ms)
  ORDER BY board, user_id
  ON CONFLICT (board, user_id) DO UPDATE SET
    score = b.score + EXCLUDED.score,
    last_event_seq = GREATEST(b.last_event_seq, EXCLUDED.last_event_seq),
    updated_at = GREATEST(b.updated_at, EXCLUDED.updated_at)
)
UPDATE users u SET
  current_score = u.current_score + t.gained,
  total_score = u.total_score + t.gained,
  last_event_seq = GREATEST(u.last_event_seq, t.last_seq),
  updated_at = now()
FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::bigint[])
  AS t(board, user_id, gained, last_seq)
WHERE t.board = $6 AND u.id = t.user_id
"""

# The rows `_BOARD_SCORES` moves in `users`, locked first and in id order. Its UPDATE
# alone takes them in whatever order its plan reads them (a batch of many players: the
# order the table's pages hold them, which differs between two batches once a commit
# has moved a row), and two batches taking the same rows in different orders deadlock:
# seen in the drain benchmark, where PostgreSQL then killed one of them.
_LOCK_SHOWN = "SELECT 1 FROM users WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE"

_PERIOD_SCORES = """
INSERT INTO period_scores AS p (board, period_id, user_id, score, last_event_seq, updated_at)
SELECT board, period_id, user_id, gained, last_seq, to_timestamp(ts_ms / 1000.0)
FROM unnest($1::text[], $2::text[], $3::uuid[], $4::bigint[], $5::bigint[], $6::bigint[])
  AS t(board, period_id, user_id, gained, last_seq, ts_ms)
ORDER BY board, period_id, user_id
ON CONFLICT (board, period_id, user_id) DO UPDATE SET
  score = p.score + EXCLUDED.score,
  last_event_seq = GREATEST(p.last_event_seq, EXCLUDED.last_event_seq),
  updated_at = GREATEST(p.updated_at, EXCLUDED.updated_at)
"""

_USED_TOKENS = f"""
INSERT INTO action_tokens (id, event_id, user_id, token_hash, board, action_type, session_id,
                           max_score_increase, expires_at, used_at)
SELECT event_id, event_id, user_id, token_hash, board, action_type, session_id, token_max,
       to_timestamp(token_expires_ms / 1000.0), {_AT}
FROM sync_staging WHERE kind = 'score_updated' AND token_hash <> ''
ON CONFLICT DO NOTHING
"""  # noqa: S608 (constant text)

_AUDIT = f"""
INSERT INTO audit_log (event_id, stream_id, event_type, user_id, ip_address, user_agent,
                       score_change, validation_result, risk_score, details, created_at)
SELECT event_id, stream_id, audit_event_type, user_id, ip, user_agent, audit_score_change,
       audit_result, audit_risk, audit_details, {_AT}
FROM sync_staging
ON CONFLICT (event_id, created_at) DO NOTHING
"""  # noqa: S608 (constant text)


@dataclass
class _Gain:
    gained: int
    last_seq: int
    ts_ms: int = 0


def _add(totals: dict[Any, _Gain], key: Any, gain: _Gain) -> None:
    current = totals.get(key)
    if current is None:
        totals[key] = gain
        return
    current.gained += gain.gained
    if gain.last_seq > current.last_seq:
        current.last_seq = gain.last_seq
        current.ts_ms = gain.ts_ms


async def _apply_totals(conn: asyncpg.Connection, applied: list[StreamEvent]) -> None:
    """Move the totals by the increases of these newly inserted updates: every board's
    all-time ones in `board_scores` (and the spec's `users` figures with those of the
    board they show), every period's in `period_scores`."""
    boards: dict[tuple[str, str], _Gain] = {}
    periods: dict[tuple[str, str, str], _Gain] = {}
    for event in applied:
        seq = event.seq or 0
        _add(
            boards,
            (event.board, event.user_id),
            _Gain(event.delta, seq, event.ts_ms),
        )
        for period_id in event.period_ids:
            _add(
                periods,
                (event.board, period_id, event.user_id),
                _Gain(event.delta, seq, event.ts_ms),
            )
    if boards:
        keys = sorted(boards)
        gains = [boards[key] for key in keys]
        shown = [user_id for board, user_id in keys if board == USERS_SHOW]
        if shown:
            await conn.execute(_LOCK_SHOWN, shown)
        await conn.execute(
            _BOARD_SCORES,
            [key[0] for key in keys],
            [key[1] for key in keys],
            [g.gained for g in gains],
            [g.last_seq for g in gains],
            [g.ts_ms for g in gains],
            USERS_SHOW,
        )
    if periods:
        period_keys = sorted(periods)
        period_gains = [periods[key] for key in period_keys]
        await conn.execute(
            _PERIOD_SCORES,
            [key[0] for key in period_keys],
            [key[1] for key in period_keys],
            [key[2] for key in period_keys],
            [g.gained for g in period_gains],
            [g.last_seq for g in period_gains],
            [g.ts_ms for g in period_gains],
        )


_SEASON_RESET = """
INSERT INTO season_resets (event_id, board, season, admin_id, reason, reset_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING 1
"""
_ARCHIVE_BOARD = """
WITH archived AS (
  INSERT INTO season_standings (board, season, user_id, score, last_event_seq, updated_at)
  SELECT b.board, $2, b.user_id, b.score, b.last_event_seq, b.updated_at
  FROM board_scores b JOIN users u ON u.id = b.user_id
  WHERE b.board = $1 AND b.score > 0 AND NOT u.banned
  RETURNING 1
) SELECT count(*) FROM archived
"""
_EMPTY_BOARD = """
WITH emptied AS (DELETE FROM board_scores WHERE board = $1 RETURNING user_id)
UPDATE users u SET current_score = 0, updated_at = now()
FROM emptied e WHERE $1 = $2 AND u.id = e.user_id AND u.current_score <> 0
"""
_NEXT_SEASON = """
UPDATE boards SET season = GREATEST(season, $2 + 1), updated_at = now() WHERE name = $1
"""


def is_season_reset(event: StreamEvent) -> bool:
    return event.kind == AUDIT and event.audit_type == SEASON_RESET


def _segments(events: list[StreamEvent]) -> list[tuple[list[StreamEvent], StreamEvent | None]]:
    """The batch cut after each season reset: what came before a reset counts in the
    season it ends, what came after in the next."""
    segments: list[tuple[list[StreamEvent], StreamEvent | None]] = []
    current: list[StreamEvent] = []
    for event in events:
        current.append(event)
        if is_season_reset(event):
            segments.append((current, event))
            current = []
    if current or not segments:
        segments.append((current, None))
    return segments


async def _end_season(conn: asyncpg.Connection, event: StreamEvent) -> None:
    """Archive the board's all-time standings as the ended season's final ones and
    empty them (once per reset event)."""
    details = json.loads(event.details or "{}")
    season = int(details["season"])
    inserted = await conn.fetchval(
        _SEASON_RESET,
        event.event_id,
        event.board,
        season,
        event.user_id or None,
        str(details.get("reason", "")),
        moment(event.ts_ms),
    )
    if inserted is None:
        return
    players = await conn.fetchval(_ARCHIVE_BOARD, event.board, season)
    await conn.execute(_EMPTY_BOARD, event.board, USERS_SHOW)
    await conn.execute(
        "UPDATE season_resets SET players = $2 WHERE event_id = $1", event.event_id, players
    )
    await conn.execute(_NEXT_SEASON, event.board, season)


async def persist_fresh(conn: asyncpg.Connection, events: list[StreamEvent]) -> None:
    """Write events never delivered before; the caller owns the transaction. Raises
    `asyncpg.UniqueViolationError` when one was persisted after all."""
    for segment, reset in _segments(events):
        await _persist_fresh(conn, segment)
        if reset is not None:
            await _end_season(conn, reset)


async def persist_batch(conn: asyncpg.Connection, events: list[StreamEvent]) -> None:
    """Write `events`, any of which may be persisted already; the caller owns the
    transaction (and commits it)."""
    for segment, reset in _segments(events):
        await _persist_batch(conn, segment)
        if reset is not None:
            await _end_season(conn, reset)


async def _persist_fresh(conn: asyncpg.Connection, events: list[StreamEvent]) -> None:
    applied = [event for event in events if event.kind == APPLIED]
    if applied:
        await conn.copy_records_to_table(
            "scores", records=[event.score_row() for event in applied], columns=SCORE_COLUMNS
        )
        spent = [event.token_row() for event in applied if event.token_hash]
        if spent:
            await conn.copy_records_to_table("action_tokens", records=spent, columns=TOKEN_COLUMNS)
    await conn.copy_records_to_table(
        "audit_log", records=[event.audit_row() for event in events], columns=AUDIT_COLUMNS
    )
    await _apply_totals(conn, applied)


async def _persist_batch(conn: asyncpg.Connection, events: list[StreamEvent]) -> None:
    if not events:
        return
    await conn.execute(_STAGING)
    await conn.execute(_CLEAR_STAGING)  # a season reset splits a batch in two
    await conn.copy_records_to_table(
        "sync_staging", records=[event.record() for event in events], columns=COLUMNS
    )
    inserted = {row[0] for row in await conn.fetch(_SCORES)}
    await conn.execute(_USED_TOKENS)
    await conn.execute(_AUDIT)
    await _apply_totals(
        conn,
        [e for e in events if e.kind == APPLIED and e.event_id.lower() in inserted],
    )
