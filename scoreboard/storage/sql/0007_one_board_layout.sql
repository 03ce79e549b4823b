-- One layout for every board's all-time totals: the `global` board's move from
-- users.current_score to board_scores, where every other board's already are. The
-- spec's users.current_score and total_score keep showing the global board's all-time
-- figures: a trigger on board_scores keeps them, so every board is written by one path.

-- Nothing reads board_scores in score order (rankings are Redis's; a rebuild reads a
-- board whole), and without that index an update of a total can stay on its page (HOT).
-- Room on each page for those updates.
DROP INDEX idx_board_scores_rank;
ALTER TABLE board_scores SET (fillfactor = 85);

INSERT INTO board_scores (board, user_id, score, last_event_seq, updated_at)
SELECT 'global', id, current_score, last_event_seq, updated_at FROM users
WHERE current_score <> 0 OR last_event_seq > 0
ON CONFLICT (board, user_id) DO NOTHING;

-- current_score follows the global board's rows; total_score adds what they gained
-- (a season reset, which deletes the rows, leaves the lifetime total alone). Statement
-- triggers: one set-based UPDATE of `users` per statement, however many rows it wrote.
-- Every writer upserts board_scores in key order first, so two writers touching the same
-- players queue on those rows before either reaches `users`.
CREATE FUNCTION global_board_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE users u SET
    current_score = n.score,
    total_score = u.total_score + n.score,
    last_event_seq = GREATEST(u.last_event_seq, n.last_event_seq),
    updated_at = now()
  FROM written n
  WHERE n.board = 'global' AND u.id = n.user_id;
  RETURN NULL;
END $$;

CREATE FUNCTION global_board_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE users u SET
    current_score = n.score,
    total_score = u.total_score + n.score - o.score,
    last_event_seq = GREATEST(u.last_event_seq, n.last_event_seq),
    updated_at = now()
  FROM written n JOIN replaced o ON o.board = n.board AND o.user_id = n.user_id
  WHERE n.board = 'global' AND u.id = n.user_id;
  RETURN NULL;
END $$;

CREATE FUNCTION global_board_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE users u SET current_score = 0, updated_at = now()
  FROM replaced o
  WHERE o.board = 'global' AND u.id = o.user_id AND u.current_score <> 0;
  RETURN NULL;
END $$;

CREATE TRIGGER global_board_scores_inserted AFTER INSERT ON board_scores
REFERENCING NEW TABLE AS written
FOR EACH STATEMENT EXECUTE FUNCTION global_board_inserted();

CREATE TRIGGER global_board_scores_updated AFTER UPDATE ON board_scores
REFERENCING OLD TABLE AS replaced NEW TABLE AS written
FOR EACH STATEMENT EXECUTE FUNCTION global_board_updated();

CREATE TRIGGER global_board_scores_deleted AFTER DELETE ON board_scores
REFERENCING OLD TABLE AS replaced
FOR EACH STATEMENT EXECUTE FUNCTION global_board_deleted();

COMMENT ON COLUMN users.last_event_stream_id IS
  'no longer written: board_scores.last_event_seq orders every board''s events';
