-- read_around.lua: a player's rank and score with up to `radius` neighbours on each
-- side, from one consistent view of the board.
--
-- Input:
--   KEYS[1]  the board (sorted set)
--   KEYS[2]  the board's players (hash: user id -> '<tie>|<updated ms>|<username>')
--   KEYS[3]  the board's state (hash; absent while the board is lost or being rebuilt)
--   ARGV[1]  user id
--   ARGV[2]  radius (0 = the player alone)
--
-- Output:
--   { 'OK', total_players, rank, first_rank, user_id, username, score, updated_ms, ... }
--     four fields per entry, from rank first_rank on; the player's own entry included
--   { 'NOT_RANKED', total_players }   the player has no score on this board
--   { 'BOARD_NOT_READY' }   the board is lost or being rebuilt: a player's score is
--                           not known, which is not the same as 0

-- @include board_entries

local S_OK = 'OK'
local S_NOT_RANKED = 'NOT_RANKED'
local S_BOARD_NOT_READY = 'BOARD_NOT_READY'

local rcall = redis.call
local board_key, players_key, state_key = KEYS[1], KEYS[2], KEYS[3]
local radius = tonumber(ARGV[2])

if rcall('EXISTS', state_key) == 0 then
  return { S_BOARD_NOT_READY }
end

local total = rcall('ZCARD', board_key)
local player = rcall('HGET', players_key, ARGV[1])
local index = player and rcall('ZREVRANK', board_key, entry_member(player, ARGV[1]))
if not index then
  return { S_NOT_RANKED, total }
end
local first = math.max(0, index - radius)
local entries = board_entries(board_key, players_key, first, index + radius)
local reply = { S_OK, total, index + 1, first + 1 }
for i = 1, #entries do
  reply[#reply + 1] = entries[i]
end
return reply
