-- adjust_score.lua: an admin's change of a player's score, through the same steps as
-- an update: the board moves, the change is appended to the event stream (the syncer
-- persists it like any other) and published. A total that reaches 0 takes the player
-- off the board ('remove' asks for exactly that). A banned player's kept standing is
-- changed off the board.
--
-- Input:
--   KEYS[1]  the board (sorted set; encodings in include/board_change.lua)
--   KEYS[2]  the board's players (hash)
--   KEYS[3]  the board's banned players (hash)
--   KEYS[4]  the board's state (hash: epoch, seq, players)
--   KEYS[5]  the board's event stream
--   KEYS[6]  the board's update channel
--   ARGV[1]  user id          ARGV[2]  username (for a player not on the board yet)
--   ARGV[3]  'adjust' | 'remove'
--   ARGV[4]  delta: a signed whole number ('adjust'; ignored by 'remove')
--   ARGV[5]  score ceiling    ARGV[6]  N of the top N that subscribers are sent
--   ARGV[7]  event id (UUID)  ARGV[8]  board name
--   ARGV[9]  the admin's user id       ARGV[10] the admin's reason
--
-- Output:
--   { 'OK', new_score, new_rank (0 = off the board), old_score, changed (0/1) }
--                         changed 0: nothing to do (a removal of no score)
--   { 'NEGATIVE', old_score }   the total would fall below 0; nothing done
--   { 'OVERFLOW', ceiling }     the total would pass the ceiling; nothing done
--   { 'BOARD_NOT_READY' } | { 'BOARD_LOST' }  as submit_score.lua
--   Stream: a 'score_updated' entry with action_type 'admin_adjust' or
--   'admin_remove', admin_id and reason, and no token.
--   Published (when the player is or was ranked): the change, as bc_publish describes.

-- @include clock_and_gcra
-- @include board_entries
-- @include board_change

local S_OK = 'OK'
local S_NEGATIVE = 'NEGATIVE'
local S_OVERFLOW = 'OVERFLOW'

local rcall = redis.call
local board_key, players_key, banned_key, state_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key, channel = KEYS[5], KEYS[6]
local user_id, username, mode = ARGV[1], ARGV[2], ARGV[3]
local ceiling, top_n = tonumber(ARGV[5]), tonumber(ARGV[6])
local event_id, board, admin_id, reason = ARGV[7], ARGV[8], ARGV[9], ARGV[10]

local function int(n)
  return string.format('%d', n)
end

local epoch, not_whole = bc_whole(state_key, players_key, board_key)
if not epoch then
  return { not_whole }
end

local old_member, old_score, old_rank = nil, 0, 0
local banned = rcall('HGET', banned_key, user_id)
if banned then
  if banned ~= '-' then
    local name, score = string.match(banned, '^[^|]*|[^|]*|(.*)|(%d+)$')
    old_member, old_score, username = entry_member(banned, user_id), tonumber(score), name
  end
else
  local player = rcall('HGET', players_key, user_id)
  if player then
    local member = entry_member(player, user_id)
    old_member, username = member, string.match(player, '^[^|]*|[^|]*|(.*)$')
    old_score = tonumber(rcall('ZSCORE', board_key, member))
    old_rank = rcall('ZREVRANK', board_key, member) + 1
  end
end

local delta = tonumber(ARGV[4])
if mode == 'remove' then
  delta = -old_score
end
if delta == 0 then
  return { S_OK, int(old_score), old_rank, int(old_score), 0 }
end
local new_score = old_score + delta
if new_score < 0 then
  return { S_NEGATIVE, int(old_score) }
end
if new_score > ceiling then
  return { S_OVERFLOW, ARGV[5] }
end

local now_ms = int(math.floor(redis_now_us() / 1000))
local seq = rcall('HINCRBY', state_key, 'seq', 1)
local tie = bc_tie(seq)
local member = tie_member(tie, user_id)
local new_rank = 0
if banned then
  local entry = '-'
  if new_score > 0 then
    entry = tie .. '|' .. now_ms .. '|' .. username .. '|' .. int(new_score)
  end
  rcall('HSET', banned_key, user_id, entry)
else
  if old_member then
    rcall('ZREM', board_key, old_member)
  end
  if new_score > 0 then
    rcall('ZADD', board_key, int(new_score), member)
    rcall('HSET', players_key, user_id, tie .. '|' .. now_ms .. '|' .. username)
    new_rank = rcall('ZREVRANK', board_key, member) + 1
    if not old_member then
      rcall('HINCRBY', state_key, 'players', 1)
    end
  else
    rcall('HDEL', players_key, user_id)
    rcall('HINCRBY', state_key, 'players', -1)
  end
end

local stream_id = rcall('XADD', events_key, '*', 'type', 'score_updated',
  'event_id', event_id, 'seq', int(seq), 'board', board, 'user_id', user_id,
  'username', username, 'delta', int(delta), 'old_score', int(old_score),
  'new_score', int(new_score), 'old_rank', int(old_rank), 'new_rank', int(new_rank),
  'action_type', 'admin_' .. mode, 'session_id', '', 'token_hash', '', 'risk', '0',
  'flagged', '0', 'reason', reason, 'admin_id', admin_id, 'ts', now_ms)

if not banned then
  local top = nil
  if (new_rank > 0 and new_rank <= top_n) or (old_rank > 0 and old_rank <= top_n) then
    top = bc_top(board_key, players_key, top_n)
  end
  bc_publish(channel, { seq = int(seq), id = stream_id, board = board, user_id = user_id,
    username = username, delta = int(delta), old_score = int(old_score),
    new_score = int(new_score), old_rank = int(old_rank), new_rank = int(new_rank),
    ts = now_ms, total = int(rcall('ZCARD', board_key)), epoch = epoch }, top)
end
return { S_OK, int(new_score), new_rank, int(old_score), 1 }
