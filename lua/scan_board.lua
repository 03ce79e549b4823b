-- scan_board.lua: one bounded chunk of a ranking's players (or of its banned players)
-- with their scores, and the board's update sequence at that instant, for the
-- reconciler. The ranking is the board's all-time one or a current period's: the keys
-- say which (the same encodings for both). A whole board is read chunk by chunk through HSCAN, so no call runs
-- long however many players the board holds; a player present for the whole scan is
-- returned at least once (HSCAN's promise), each time with the sequence of its chunk.
--
-- Input:
--   KEYS[1]  the hash to scan: the ranking's players (user id -> '<tie>|...') or its
--            banned players (user id -> the banned entry), as ARGV[1] says
--   KEYS[2]  the ranking (sorted set of members)
--   KEYS[3]  the board's state (hash: epoch, seq, players)
--   ARGV[1]  'players' or 'banned'
--   ARGV[2]  the HSCAN cursor ('0' to start)
--   ARGV[3]  how many fields to ask HSCAN for (a hint to Redis, not an exact count)
--
-- Output: { 'OK', cursor (the next; '0' when the scan is over), seq ('' = no state),
--           values ({ user id, value, ... }) }
--   value: 'players': the player's score on the board as a decimal string ('' when
--          the member is missing from the sorted set); 'banned': the entry as stored
--
-- Errors: none.

-- @include board_entries
local S_OK = 'OK'

local rcall = redis.call
local hash_key, board_key, state_key = KEYS[1], KEYS[2], KEYS[3]
local scanned = rcall('HSCAN', hash_key, ARGV[2], 'COUNT', tonumber(ARGV[3]))
local flat = scanned[2]
local out = {}
if ARGV[1] == 'players' and #flat > 0 then
  local members = {}
  for i = 2, #flat, 2 do
    members[#members + 1] = entry_member(flat[i], flat[i - 1])
  end
  local scores = rcall('ZMSCORE', board_key, unpack(members))
  for i = 1, #members do
    out[#out + 1] = flat[2 * i - 1]
    out[#out + 1] = scores[i] or ''
  end
else
  out = flat
end
return { S_OK, scanned[1], rcall('HGET', state_key, 'seq') or '', out }
