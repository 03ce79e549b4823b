-- read_standings.lua: some players' standings in one ranking of a board (its all-time
-- one or a current period's: the keys say which) in one instant, with the board's
-- update sequence then, for the reconciler to confirm what a chunked scan found
-- different (the board kept changing while it was scanned).
--
-- Input:
--   KEYS[1]  the ranking's players (hash: user id -> '<tie>|<updated ms>|<username>')
--   KEYS[2]  the ranking (sorted set of members)
--   KEYS[3]  the ranking's banned players (hash: user id -> the banned entry)
--   KEYS[4]  the board's state (hash: epoch, seq, players)
--   ARGV[1..] user ids (a bounded number per call: the caller sends chunks)
--
-- Output: { 'OK', seq ('' = no state), values ({ score, banned entry, ... }) } with two values
--   per user id of ARGV, in its order: the score on the board as a decimal string
--   ('' when not on it) and the banned entry ('' when not banned)
--
-- Errors: none.

-- @include board_entries
local S_OK = 'OK'

local rcall = redis.call
local players_key, board_key, banned_key, state_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local out = {}
if #ARGV > 0 then
  local infos = rcall('HMGET', players_key, unpack(ARGV))
  local banned = rcall('HMGET', banned_key, unpack(ARGV))
  local members = {}
  for i = 1, #ARGV do
    -- a player off the board asks for a member no sorted set holds
    members[i] = infos[i] and entry_member(infos[i], ARGV[i]) or '-'
  end
  local scores = rcall('ZMSCORE', board_key, unpack(members))
  for i = 1, #ARGV do
    out[#out + 1] = scores[i] or ''
    out[#out + 1] = banned[i] or ''
  end
end
return { S_OK, rcall('HGET', state_key, 'seq') or '', out }
