-- The score and used-token rows of an event take the event's id as their primary key:
-- that key alone keeps a replayed event from being written twice, so the separate
-- unique index on event_id (one more index to maintain for every event) goes.

UPDATE scores SET id = event_id WHERE id <> event_id;
ALTER TABLE scores DROP CONSTRAINT scores_event_id_key;

UPDATE action_tokens SET id = event_id WHERE event_id IS NOT NULL AND id <> event_id;
ALTER TABLE action_tokens DROP CONSTRAINT action_tokens_event_id_key;
