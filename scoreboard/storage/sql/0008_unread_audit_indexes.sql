-- Every persisted event writes a row of audit_log, and each index on it is one more
-- write per event. The admin listings read a player's history, a type's records and
-- the review queue newest first by id (idx_audit_log_user_order, _type_order, _review);
-- nothing reads these two by time, which the id order already follows.
DROP INDEX IF EXISTS idx_audit_log_user_id;
DROP INDEX IF EXISTS idx_audit_log_event_type;
