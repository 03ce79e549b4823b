-- ban_player.lua: take a player off the board at once, keeping their score and tie
-- position for an unban, and refuse them tokens and updates from now on. Announced
-- like an update, so every process's top N and live feeds drop the player.
--
-- Input:
--   KEYS[1]  the board (sorted set; encodings in include/board_change.lua)
--   KEYS[2]  the board's players (hash)
--   KEYS[3]  the board's banned players (hash)
--   KEYS[4]  the board's state (hash: epoch, seq, players)
--   KEYS[5]  the board's update channel
--   KEYS[6]  the board's rebuild lock: no ban while a rebuild is staging the board
--            (it would install a board staged before the ban)
--   KEYS[7..] three per current period of the board: its ranking, players and banned
--            players (include/period_bans.lua); the player's entry there moves too
--   ARGV[1]  user id      ARGV[2]  N of the top N that subscribers are sent
--   ARGV[3]  board name
--
-- Output:
--   { 'OK', old_rank (0 = was not ranked), score, changed (0 = was banned already) }
--   { 'REBUILDING' }  a rebuild holds the board; nothing done, retry shortly
--   { 'BOARD_NOT_READY' } | { 'BOARD_LOST' }  as submit_score.lua
--   Published (when the player was ranked): the move, as bc_announce_move describes.

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
pb_ban(KEYS, 7, user_id)
local kept = rcall('HGET', banned_key, user_id)
if kept then
  return { S_OK, 0, tonumber(string.match(kept, '|(%d+)$') or '0'), 0 }
end
local player = rcall('HGET', players_key, user_id)
if not player then
  rcall('HSET', banned_key, user_id, '-')
  return { S_OK, 0, 0, 1 }
end
local member = entry_member(player, user_id)
local username = string.match(player, '^[^|]*|[^|]*|(.*)$')
local score = rcall('ZSCORE', board_key, member)
local old_rank = rcall('ZREVRANK', board_key, member) + 1
rcall('ZREM', board_key, member)
rcall('HDEL', players_key, user_id)
rcall('HINCRBY', state_key, 'players', -1)
rcall('HSET', banned_key, user_id, player .. '|' .. score)
bc_announce_move(KEYS[5], { board_key, players_key, state_key }, top_n, { board = ARGV[3],
  epoch = epoch, user_id = user_id, username = username, score = score,
  old_rank = old_rank, new_rank = 0 })
return { S_OK, old_rank, tonumber(score), 1 }
