-- read_range.lua: one consistent page of the board, best first.
--
-- Input:
--   KEYS[1]  the board (sorted set)
--   KEYS[2]  the board's players (hash: user id -> '<tie>|<updated ms>|<username>')
--   KEYS[3]  the board's state (hash: epoch, seq, players; absent while the board is
--            lost or being rebuilt)
--   ARGV[1]  first position, 0-based
--   ARGV[2]  last position, 0-based, inclusive
--
-- Output:
--   { 'OK', total_players, sequence, epoch, user_id, username, score, updated_ms, ... }
--     four fields per entry, ranks ARGV[1]+1 onwards; scores as decimal strings;
--     sequence and epoch are the version of this view
--   { 'BOARD_NOT_READY' }   the board is lost or being rebuilt: no answer is better
--                           than an empty board

-- @include board_entries

local S_OK = 'OK'
local S_BOARD_NOT_READY = 'BOARD_NOT_READY'

local board_key, players_key, state_key = KEYS[1], KEYS[2], KEYS[3]
local state = redis.call('HMGET', state_key, 'epoch', 'seq')
if not state[1] then
  return { S_BOARD_NOT_READY }
end
local entries = board_entries(board_key, players_key, tonumber(ARGV[1]), tonumber(ARGV[2]))
local reply = { S_OK, redis.call('ZCARD', board_key), tonumber(state[2]), state[1] }
for i = 1, #entries do
  reply[#reply + 1] = entries[i]
end
return reply
