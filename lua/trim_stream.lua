-- trim_stream.lua: drop the stream entries the syncer has persisted and acknowledged,
-- unless the board is being rebuilt. A rebuild reads PostgreSQL first and the stream
-- after; an entry persisted after its snapshot must still be in the stream when it is
-- read, so nothing is trimmed while the rebuild lock is held.
--
-- Input:
--   KEYS[1]  the board's event stream
--   KEYS[2]  the board's rebuild lock (string; present while a rebuild runs)
--   ARGV[1]  the lowest stream id to keep (XTRIM MINID, exact)
--
-- Output:
--   { 'OK', trimmed }     how many entries were removed
--   { 'REBUILDING' }      nothing removed; try again after the rebuild

local S_OK = 'OK'
local S_REBUILDING = 'REBUILDING'

local rcall = redis.call
local events_key, lock_key = KEYS[1], KEYS[2]

if rcall('EXISTS', lock_key) == 1 then
  return { S_REBUILDING }
end
return { S_OK, rcall('XTRIM', events_key, 'MINID', ARGV[1]) }
