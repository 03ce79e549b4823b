-- Stream order of applied events. The board's update sequence (one counter per board,
-- carried by every applied event) orders events exactly, so current_score moves only
-- forward and a rebuilt board keeps its tie order.

ALTER TABLE users ADD COLUMN last_event_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE scores ADD COLUMN seq BIGINT;
ALTER TABLE audit_log ADD COLUMN stream_id TEXT;
