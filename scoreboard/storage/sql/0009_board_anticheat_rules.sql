-- A board's plausibility rules per action type (anti-cheat): points per second of play,
-- the range of levels, whether a claimed time_taken is required. NULL: the defaults.
ALTER TABLE boards ADD COLUMN IF NOT EXISTS anticheat jsonb;
