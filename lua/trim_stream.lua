-- trim_stream.lua: drop the stream entries the syncer has persisted and acknowledged,
-- unless the board is being rebuilt or reconciled. Both read PostgreSQL first and the
-- stream after; an entry persisted after their snapshot must still be in the stream
-- when it is read, so nothing is trimmed while the rebuild lock or the trim hold (a
-- reconcile comparing the board) is present.
--
-- Input:
--   KEYS[1]  the board's event stream
--   KEYS[2]  the board's rebuild lock (string; present while a rebuild runs)
--   KEYS[3]  the board's trim hold (string; present while a reconcile compares)
--   ARGV[1]  the lowest stream id to keep (XTRIM MINID, exact)
--
-- Output:
--   { 'OK', trimmed }     how many entries were removed
--   { 'REBUILDING' }      nothing removed; try again after the rebuild or reconcile

local S_OK = 'OK'
local S_REBUILDING = 'REBUILDING'

local rcall = redis.call
local events_key, lock_key, hold_key = KEYS[1], KEYS[2], KEYS[3]

if rcall('EXISTS', lock_key, hold_key) > 0 then
  return { S_REBUILDING }
end
return { S_OK, rcall('XTRIM', events_key, 'MINID', ARGV[1]) }
