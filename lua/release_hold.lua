-- release_hold.lua: let go of one of a board's holds (its rebuild lock, or the trim
-- hold of a reconcile), only if it is still the caller's: a hold that expired and was
-- taken by another is never deleted from under it.
--
-- Input:
--   KEYS[1]  the hold (string: its owner's token)
--   ARGV[1]  the owner's token
--
-- Output:
--   { 'OK', released }   released: 1 deleted; 0 gone or another's (nothing changed)

local S_OK = 'OK'

local rcall = redis.call
local hold_key = KEYS[1]

if rcall('GET', hold_key) ~= ARGV[1] then
  return { S_OK, 0 }
end
rcall('DEL', hold_key)
return { S_OK, 1 }
