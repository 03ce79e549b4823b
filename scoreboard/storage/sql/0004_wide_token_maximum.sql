-- A token's maximum increase is any whole number up to the score ceiling (2^53 - 1),
-- which a 32-bit column could not hold: the syncer's copy of such a token failed.

ALTER TABLE action_tokens ALTER COLUMN max_score_increase TYPE BIGINT;
