-- reset_season.lua: end the current season of a board's all-time ranking. In one
-- step: the ranking and its players hash are emptied, banned players' kept standings
-- are dropped (they were of the ended season), the season number goes up, a
-- `season_reset` audit entry goes into the board's stream (the syncer archives the
-- ended season's standings from PostgreSQL when it persists it: every update before
-- the entry counts in the ended season, every update after it in the new one), and
-- the empty board is published like an update, so live clients get it at once.
-- Period rankings are not seasons: they are left alone.
--
-- Input:
--   KEYS[1]  the board (sorted set; encodings in include/board_change.lua)
--   KEYS[2]  the board's players (hash)
--   KEYS[3]  the board's banned players (hash)
--   KEYS[4]  the board's state (hash: epoch, seq, players)
--   KEYS[5]  the board's event stream
--   KEYS[6]  the board's update channel
--   KEYS[7]  the board's season number (string; absent: ARGV[1])
--   KEYS[8]  the board's rebuild lock
--   ARGV[1]  the season PostgreSQL holds (used when KEYS[7] is absent)
--   ARGV[2]  event id (UUID)         ARGV[3]  board name
--   ARGV[4]  the admin's user id     ARGV[5]  the reason
--   ARGV[6]  the admin's address     ARGV[7]  the admin's user agent
--
-- Output:
--   { 'OK', ended (the season that ended), season (the new one), players (the ended
--     season had) }
--   { 'REBUILDING' } | { 'BOARD_NOT_READY' } | { 'BOARD_LOST' }   nothing done
--   Published: as bc_publish in include/board_change.lua, with an empty top.

-- @include clock_and_gcra
-- @include board_entries
-- @include board_change

local S_OK = 'OK'

local rcall = redis.call
local board_key, players_key, banned_key, state_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local events_key, channel, season_key, lock_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]

local epoch, not_settled = bc_settled(lock_key, state_key, players_key, board_key)
if not epoch then
  return { not_settled }
end

local ended = tonumber(rcall('GET', season_key) or ARGV[1])
local season = ended + 1
rcall('SET', season_key, string.format('%d', season))

local players = rcall('ZCARD', board_key)
rcall('UNLINK', board_key, players_key) -- freed off the main thread: a big board would stall Redis
local banned = rcall('HKEYS', banned_key)
for _, user_id in ipairs(banned) do
  rcall('HSET', banned_key, user_id, '-')
end
rcall('HSET', state_key, 'players', 0)
local seq = rcall('HINCRBY', state_key, 'seq', 1)

local now_ms = string.format('%d', math.floor(redis_now_us() / 1000))
local details = cjson.encode({ season = ended, reason = ARGV[5], players = players })
local stream_id = rcall('XADD', events_key, '*', 'type', 'audit', 'event_id', ARGV[2],
  'board', ARGV[3], 'event_type', 'season_reset', 'user_id', ARGV[4], 'ip', ARGV[6],
  'user_agent', ARGV[7], 'result', 'reset', 'details', details, 'ts', now_ms)

bc_publish(channel, { seq = string.format('%d', seq), id = stream_id, board = ARGV[3],
  user_id = '', username = '', delta = '0', old_score = '0', new_score = '0',
  old_rank = '0', new_rank = '0', ts = now_ms, total = '0', epoch = epoch }, {})

return { S_OK, ended, season, players }
