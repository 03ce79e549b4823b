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

from dataclasses import dataclass

import asyncpg

from scoreboard.sync.events import (
    APPLIED,
    AUDIT_COLUMNS,
    COLUMNS,
    SCORE_COLUMNS,
    TOKEN_COLUMNS,
    StreamEvent,
)

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS sync_staging (
  stream_id text, event_id uuid, kind text, seq bigint, board text, user_id uuid,
  delta bigint, new_score bigint, old_rank bigint, new_rank bigint, action_type text,
  session_id text, token_hash text, token_max bigint, token_expires_ms bigint,
  risk float8, flagged boolean, reason text, status text, ip inet, user_agent text,
  action_data jsonb, ts_ms bigint, reasons text, token_wait_ms bigint, admin_id uuid,
  audit_type text, details text, audit_event_type text, audit_result text,
  audit_score_change bigint, audit_risk float8, audit_details jsonb
) ON COMMIT DELETE ROWS
"""

_SCORES = """
WITH inserted AS (
  INSERT INTO scores (id, event_id, stream_id, seq, board, user_id, score_change, new_score,
                      action_type, session_id, action_data, risk_score, created_at,
                      ip_address, user_agent)
  SELECT event_id, event_id, stream_id, seq, board, user_id, delta, new_score, action_type,
         session_id, action_data, risk, to_timestamp(ts_ms / 1000.0), ip, user_agent
  FROM sync_staging WHERE kind = 'score_updated'
  ON CONFLICT (id) DO NOTHING
  RETURNING user_id, score_change, new_score, seq, stream_id
), totals AS (
  SELECT user_id, sum(score_change) AS gained, max(seq) AS last_seq,
         (array_agg(stream_id ORDER BY seq DESC))[1] AS latest_stream_id
  FROM inserted GROUP BY user_id
)
SELECT user_id, gained, last_seq, latest_stream_id FROM totals ORDER BY user_id
"""

# Row locks on the players, taken in id order (the lock sits above the sort), so two
# batches touching the same players queue instead of deadlocking. NO KEY UPDATE, the
# lock the UPDATE takes itself: it does not conflict with the KEY SHARE locks that
# another batch's foreign-key checks hold on the same players.
_LOCK_PLAYERS = "SELECT 1 FROM users WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE"

_USERS = """
UPDATE users u SET
  total_score = u.total_score + t.gained,
  current_score = u.current_score + t.gained,
  last_event_stream_id = CASE WHEN t.last_seq > u.last_event_seq
                              THEN t.latest_stream_id ELSE u.last_event_stream_id END,
  last_event_seq = GREATEST(u.last_event_seq, t.last_seq),
  updated_at = now()
FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[])
  AS t(user_id, gained, last_seq, latest_stream_id)
WHERE u.id = t.user_id
"""

_USED_TOKENS = """
INSERT INTO action_tokens (id, event_id, user_id, token_hash, board, action_type, session_id,
                           max_score_increase, expires_at, used_at)
SELECT event_id, event_id, user_id, token_hash, board, action_type, session_id, token_max,
       to_timestamp(token_expires_ms / 1000.0), to_timestamp(ts_ms / 1000.0)
FROM sync_staging WHERE kind = 'score_updated' AND token_hash <> ''
ON CONFLICT DO NOTHING
"""

_AUDIT = """
INSERT INTO audit_log (event_id, stream_id, event_type, user_id, ip_address, user_agent,
                       score_change, validation_result, risk_score, details, created_at)
SELECT event_id, stream_id, audit_event_type, user_id, ip, user_agent, audit_score_change,
       audit_result, audit_risk, audit_details, to_timestamp(ts_ms / 1000.0)
FROM sync_staging
ON CONFLICT (event_id) DO NOTHING
"""


@dataclass
class _Gain:
    gained: int
    last_seq: int
    latest_stream_id: str


def _add(totals: dict[str, _Gain], user_id: str, gain: _Gain) -> None:
    current = totals.get(user_id)
    if current is None:
        totals[user_id] = gain
        return
    current.gained += gain.gained
    if gain.last_seq > current.last_seq:
        current.last_seq = gain.last_seq
        current.latest_stream_id = gain.latest_stream_id


async def _update_players(conn: asyncpg.Connection, totals: dict[str, _Gain]) -> None:
    if not totals:
        return
    ids = sorted(totals)
    gains = [totals[user_id] for user_id in ids]
    await conn.execute(_LOCK_PLAYERS, ids)
    await conn.execute(
        _USERS,
        ids,
        [g.gained for g in gains],
        [g.last_seq for g in gains],
        [g.latest_stream_id for g in gains],
    )


async def persist_fresh(conn: asyncpg.Connection, events: list[StreamEvent]) -> None:
    """Write events never delivered before; the caller owns the transaction. Raises
    `asyncpg.UniqueViolationError` when one was persisted after all."""
    applied = [event for event in events if event.kind == APPLIED]
    totals: dict[str, _Gain] = {}
    for event in applied:
        seq = event.seq or 0
        _add(totals, event.user_id, _Gain(event.delta, seq, event.stream_id))
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
    await _update_players(conn, totals)


async def persist_batch(conn: asyncpg.Connection, events: list[StreamEvent]) -> None:
    """Write `events`, any of which may be persisted already; the caller owns the
    transaction (and commits it)."""
    await conn.execute(_STAGING)
    await conn.copy_records_to_table(
        "sync_staging", records=[event.record() for event in events], columns=COLUMNS
    )
    rows = await conn.fetch(_SCORES)
    await conn.execute(_USED_TOKENS)
    await conn.execute(_AUDIT)
    totals = {
        str(row["user_id"]): _Gain(row["gained"], row["last_seq"], row["latest_stream_id"])
        for row in rows
    }
    await _update_players(conn, totals)
