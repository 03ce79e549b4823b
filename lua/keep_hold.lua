-- keep_hold.lua: extend one of a board's holds (its rebuild lock, or the trim hold of
-- a reconcile) for as long again, while the one who took it still holds it. A rebuild
-- or a compare that outlasts the hold's first lifetime keeps its protection; a hold
-- that expired and was taken by another is left to its new owner.
--
-- Input:
--   KEYS[1]  the hold (string: its owner's token)
--   ARGV[1]  the owner's token
--   ARGV[2]  how long the hold lasts from now (ms)
--
-- Output:
--   { 'OK', held }   held: 1 extended; 0 gone or another's (nothing changed)

local S_OK = 'OK'

local rcall = redis.call
local hold_key = KEYS[1]

if rcall('GET', hold_key) ~= ARGV[1] then
  return { S_OK, 0 }
end
rcall('PEXPIRE', hold_key, tonumber(ARGV[2]))
return { S_OK, 1 }
