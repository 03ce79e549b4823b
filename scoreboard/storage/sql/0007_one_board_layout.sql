-- One layout for every board's all-time totals: the `global` board's move from
-- users.current_score to board_scores, where every other board's already are. The
-- spec's users.current_score and total_score keep showing the global board's all-time
-- figures: the syncer's one statement that moves every board's totals moves them too.

-- Nothing reads board_scores in score order (rankings are Redis's; a rebuild reads a
-- board whole), and without that index an update of a total can stay on its page (HOT).
-- Room on each page for those updates.
DROP INDEX idx_board_scores_rank;
ALTER TABLE board_scores SET (fillfactor = 85);

INSERT INTO board_scores (board, user_id, score, last_event_seq, updated_at)
SELECT 'global', id, current_score, last_event_seq, updated_at FROM users
WHERE current_score <> 0 OR last_event_seq > 0
ON CONFLICT (board, user_id) DO NOTHING;

COMMENT ON COLUMN users.last_event_stream_id IS
  'no longer written: board_scores.last_event_seq orders every board''s events';
