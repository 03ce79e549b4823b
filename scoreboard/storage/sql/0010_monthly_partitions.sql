-- scores and audit_log partitioned by month of created_at (UTC months), so a read of a
-- time range touches only its months and the audit trail's retention drops whole
-- months. A row whose month has no partition yet lands in the table's default
-- partition; month_partition() moves such rows into the month's partition when it
-- makes it (the syncer makes the coming months ahead).
--
-- A replayed event still inserts nothing: its rows' created_at is the event's own
-- moment, so the unique keys (id, created_at) and (event_id, created_at) find it again.

CREATE FUNCTION month_partition(parent text, month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  first timestamptz := date_trunc('month', month::timestamp) AT TIME ZONE 'UTC';
  after timestamptz := (date_trunc('month', month::timestamp) + interval '1 month')
                       AT TIME ZONE 'UTC';
  name text := parent || '_' || to_char(month, 'YYYY_MM');
  fallback text := parent || '_default';
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('month_partition ' || parent));
  IF to_regclass(name) IS NOT NULL THEN
    RETURN false;
  END IF;
  EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                 name, parent);
  -- writes into the default partition wait while its rows of the month move
  EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', fallback);
  EXECUTE format('WITH moved AS (DELETE FROM %I WHERE created_at >= $1 AND created_at < $2'
                 ' RETURNING *) INSERT INTO %I SELECT * FROM moved', fallback, name)
    USING first, after;
  EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                 parent, name, first, after);
  RETURN true;
END $$;

-- scores
ALTER TABLE scores RENAME TO scores_unpartitioned;
ALTER INDEX scores_pkey RENAME TO scores_unpartitioned_pkey;
ALTER INDEX idx_scores_user_id RENAME TO idx_scores_unpartitioned_user_id;
ALTER INDEX idx_scores_created_at RENAME TO idx_scores_unpartitioned_created_at;
ALTER TABLE scores_unpartitioned RENAME CONSTRAINT scores_user_id_fkey
  TO scores_unpartitioned_user_id_fkey;

CREATE TABLE scores (
  LIKE scores_unpartitioned INCLUDING DEFAULTS,
  CONSTRAINT scores_pkey PRIMARY KEY (id, created_at),
  CONSTRAINT scores_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id)
) PARTITION BY RANGE (created_at);
CREATE INDEX idx_scores_user_id ON scores (user_id);
CREATE INDEX idx_scores_created_at ON scores (created_at);
CREATE TABLE scores_default PARTITION OF scores DEFAULT;

-- audit_log (its id sequence carries on)
ALTER SEQUENCE audit_log_id_seq OWNED BY NONE;
ALTER TABLE audit_log RENAME TO audit_log_unpartitioned;
ALTER INDEX audit_log_pkey RENAME TO audit_log_unpartitioned_pkey;
ALTER INDEX audit_log_event_id_key RENAME TO audit_log_unpartitioned_event_id_key;
ALTER INDEX idx_audit_log_review RENAME TO idx_audit_log_unpartitioned_review;
ALTER INDEX idx_audit_log_type_order RENAME TO idx_audit_log_unpartitioned_type_order;
ALTER INDEX idx_audit_log_user_order RENAME TO idx_audit_log_unpartitioned_user_order;
ALTER TABLE audit_log_unpartitioned RENAME CONSTRAINT audit_log_user_id_fkey
  TO audit_log_unpartitioned_user_id_fkey;

CREATE TABLE audit_log (
  LIKE audit_log_unpartitioned INCLUDING DEFAULTS,
  CONSTRAINT audit_log_pkey PRIMARY KEY (id, created_at),
  CONSTRAINT audit_log_event_id_key UNIQUE (event_id, created_at),
  CONSTRAINT audit_log_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id)
) PARTITION BY RANGE (created_at);
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;
CREATE INDEX idx_audit_log_review ON audit_log (id)
  WHERE validation_result = 'flagged' OR details->>'status' = 'ANTICHEAT_REJECTED';
CREATE INDEX idx_audit_log_user_order ON audit_log (user_id, id);
CREATE INDEX idx_audit_log_type_order ON audit_log (event_type, id);
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;

-- a partition for every month the rows span, and this month and the next two
DO $$
DECLARE
  month date;
  parent text;
BEGIN
  FOREACH parent IN ARRAY ARRAY['scores', 'audit_log'] LOOP
    FOR month IN
      EXECUTE format(
        'SELECT generate_series(date_trunc(''month'', least(min(created_at), now())'
        ' AT TIME ZONE ''UTC''), date_trunc(''month'', now() AT TIME ZONE ''UTC'')'
        ' + interval ''2 months'', interval ''1 month'')::date FROM %I',
        parent || '_unpartitioned')
    LOOP
      PERFORM month_partition(parent, month);
    END LOOP;
  END LOOP;
END $$;

INSERT INTO scores SELECT * FROM scores_unpartitioned;
INSERT INTO audit_log SELECT * FROM audit_log_unpartitioned;
DROP TABLE scores_unpartitioned;
DROP TABLE audit_log_unpartitioned;
