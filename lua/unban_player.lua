-- unban_player.lua: put a banned player back on the board with the score and tie
-- position they had, and let them play again. Announced like an update.
--
-- Input:
--   KEYS[1]  the board (sorted set; encodings in include/board_change.lua)
--   KEYS[2]  the board's players (hash)
--   KEYS[3]  the board's banned players (hash)
--   KEYS[4]  the board's state (hash: epoch, seq, players)
--   KEYS[5]  the board's update channel
--   KEYS[6]  the board's rebuild lock: no unban while a rebuild is staging the board
--   KEYS[7..] three per current period of the board, as ban_player.lua
--   ARGV[1]  user id      ARGV[2]  N of the top N that subscribers are sent
--   ARGV[3]  board name
--
-- Output:
--   { 'OK', new_rank (0 = not ranked: no score), score, changed (0 = was not banned) }
--   { 'REBUILDING' } | { 'BOARD_NOT_READY' } | { 'BOARD_LOST' }  as ban_player.lua
--   Published (when the player returns to the board): the move, as bc_announce_move
--   describes.

-- @include clock_and_gcra
-- @include board_entries
-- @include board_change
-- @include period_bans

local S_OK = 'OK'

local rcall = redis.call
local board_key, players_key, banned_key, state_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local user_id, top_n = ARGV[1], tonumber(ARGV[2])

local epoch, not_settled = bc_settled(KEYS[6], state_key, players_key, board_key)
if not epoch then
  return { not_settled }
end
pb_unban(KEYS, 7, user_id)
local kept = rcall('HGET', banned_key, user_id)
if not kept then
  return { S_OK, 0, 0, 0 }
end
rcall('HDEL', banned_key, user_id)
if kept == '-' then
  return { S_OK, 0, 0, 1 }
end
local updated, username, score = string.match(kept, '^[^|]*|([^|]*)|(.*)|(%d+)$')
local tie = entry_tie(kept)
local member = tie_member(tie, user_id)
rcall('ZADD', board_key, score, member)
rcall('HSET', players_key, user_id, tie .. '|' .. updated .. '|' .. username)
rcall('HINCRBY', state_key, 'players', 1)
local new_rank = rcall('ZREVRANK', board_key, member) + 1
bc_announce_move(KEYS[5], { board_key, players_key, state_key }, top_n, { board = ARGV[3],
  epoch = epoch, user_id = user_id, username = username, score = score,
  old_rank = 0, new_rank = new_rank })
return { S_OK, new_rank, tonumber(score), 1 }
