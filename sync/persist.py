"""One batch of events into PostgreSQL, in one transaction, through a staging table.

Every row carries its event id under a unique constraint, so a batch replayed after a
crash inserts nothing twice; totals move only by the rows actually inserted, and
`current_score` only forward in the board's update order.
"""

from __future__ import annotations

import asyncpg

from sync.events import COLUMNS, StreamEvent

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS sync_staging (
  stream_id text, event_id uuid, kind text, seq bigint, board text, user_id uuid,
  delta bigint, new_score bigint, old_rank bigint, new_rank bigint, action_type text,
  session_id text, token_hash text, token_max bigint, token_expires_ms bigint,
  risk float8, flagged boolean, reason text, status text, ip inet, user_agent text,
  action_data jsonb, ts_ms bigint
) ON COMMIT DELETE ROWS
"""

_SCORES = """
WITH inserted AS (
  INSERT INTO scores (event_id, stream_id, seq, board, user_id, score_change, new_score,
                      action_type, session_id, action_data, risk_score, created_at,
                      ip_address, user_agent)
  SELECT event_id, stream_id, seq, board, user_id, delta, new_score, action_type,
         session_id, action_data, risk, to_timestamp(ts_ms / 1000.0), ip, user_agent
  FROM sync_staging WHERE kind = 'score_updated'
  ON CONFLICT (event_id) DO NOTHING
  RETURNING user_id, score_change, new_score, seq, stream_id
), totals AS (
  SELECT user_id, sum(score_change) AS gained, max(seq) AS last_seq,
         (array_agg(new_score ORDER BY seq DESC))[1] AS latest_score,
         (array_agg(stream_id ORDER BY seq DESC))[1] AS latest_stream_id
  FROM inserted GROUP BY user_id
)
UPDATE users u SET
  total_score = u.total_score + t.gained,
  current_score = CASE WHEN t.last_seq > u.last_event_seq
                       THEN t.latest_score ELSE u.current_score END,
  last_event_stream_id = CASE WHEN t.last_seq > u.last_event_seq
                              THEN t.latest_stream_id ELSE u.last_event_stream_id END,
  last_event_seq = GREATEST(u.last_event_seq, t.last_seq),
  updated_at = now()
FROM totals t WHERE u.id = t.user_id
"""

_USED_TOKENS = """
INSERT INTO action_tokens (event_id, user_id, token_hash, board, action_type, session_id,
                           max_score_increase, expires_at, used_at)
SELECT event_id, user_id, token_hash, board, action_type, session_id, token_max,
       to_timestamp(token_expires_ms / 1000.0), to_timestamp(ts_ms / 1000.0)
FROM sync_staging WHERE kind = 'score_updated'
ON CONFLICT DO NOTHING
"""

_AUDIT = """
INSERT INTO audit_log (event_id, stream_id, event_type, user_id, ip_address, user_agent,
                       score_change, validation_result, risk_score, details, created_at)
SELECT event_id, stream_id,
       CASE kind WHEN 'score_updated' THEN 'score_update' ELSE 'score_rejected' END,
       user_id, ip, user_agent, delta,
       CASE WHEN kind = 'score_rejected' THEN 'rejected'
            WHEN flagged THEN 'flagged' ELSE 'approved' END,
       risk,
       jsonb_strip_nulls(jsonb_build_object(
         'board', board, 'seq', seq, 'reason', NULLIF(reason, ''), 'status', status,
         'action_type', action_type, 'session_id', session_id, 'token_hash', token_hash,
         'old_rank', old_rank, 'new_rank', new_rank, 'new_score', new_score)),
       to_timestamp(ts_ms / 1000.0)
FROM sync_staging
ON CONFLICT (event_id) DO NOTHING
"""


async def persist_batch(conn: asyncpg.Connection, events: list[StreamEvent]) -> None:
    """Write `events`; the caller owns the transaction (and commits it)."""
    await conn.execute(_STAGING)
    await conn.copy_records_to_table(
        "sync_staging", records=[event.record() for event in events], columns=COLUMNS
    )
    await conn.execute(_SCORES)
    await conn.execute(_USED_TOKENS)
    await conn.execute(_AUDIT)
