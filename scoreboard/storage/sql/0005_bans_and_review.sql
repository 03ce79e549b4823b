-- Bans with their moment and reason (the audit log keeps who and why in full), and
-- the indexes of the admin views: the review queue of flagged and anti-cheat-rejected
-- updates, a player's history and the audit listing, all newest first by id.

ALTER TABLE users ADD COLUMN banned_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN banned_reason TEXT;

CREATE INDEX idx_audit_log_review ON audit_log (id)
  WHERE validation_result = 'flagged' OR details->>'status' = 'ANTICHEAT_REJECTED';
CREATE INDEX idx_audit_log_user_order ON audit_log (user_id, id);
CREATE INDEX idx_audit_log_type_order ON audit_log (event_type, id);
