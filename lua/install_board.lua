-- install_board.lua: swap a board rebuilt off to the side into place, catch up with
-- the updates applied while it was being built, and announce the new build, so
-- readers never see an empty board, no update is lost or counted twice, and every
-- process drops its copy of the old build.
--
-- The staged board holds every update up to ARGV[2]; each applied update after it
-- adds its increase on top (its stored total came from the board being replaced,
-- which may have been wrong: that is why it is being rebuilt). An update of a banned
-- player moves their kept standing; a total that reaches 0 (an admin's removal)
-- takes the player off.
--
-- Input:
--   KEYS[1]  the staged board (sorted set; renamed onto KEYS[4])
--   KEYS[2]  the staged players (hash; renamed onto KEYS[5])
--   KEYS[3]  the staged banned players (hash; renamed onto KEYS[6])
--   KEYS[4]  the board (sorted set of members; encodings in include/board_change.lua)
--   KEYS[5]  the board's players (hash: user id -> '<tie>|<updated ms>|<username>')
--   KEYS[6]  the board's banned players (hash)
--   KEYS[7]  the board's state (hash: epoch, seq, players; written here)
--   KEYS[8]  the board's event stream
--   KEYS[9]  the board's update channel (the announcement goes there)
--   KEYS[10..] six per current period of ARGV[4], in its order: the staged ranking,
--            players and banned players (renamed onto the next three), the live
--            ranking, players and banned players (include/period_bans.lua)
--   ARGV[1]  highest update sequence the staged board includes
--   ARGV[2]  last stream id read while staging ('0-0' when none)
--   ARGV[3]  the new build's epoch (random, never reused)
--   ARGV[4]  the current periods' ids, comma-separated ('' = none): their staged
--            rankings replace the live ones, and the updates applied on top count in
--            them too
--   ARGV[5]  how long each of those periods' keys stay, in ms, comma-separated in the
--            order of ARGV[4]
--
-- Output: { 'OK', caught_up, seq } where caught_up counts the updates applied on top
--   and seq is the board's update sequence now.
--   Published: 'rebuilt <epoch> <seq>'.
--
-- Errors: none.

-- @include board_entries
-- @include board_change

local S_OK = 'OK'

local rcall = redis.call
local staged_board, staged_players, staged_banned = KEYS[1], KEYS[2], KEYS[3]
local board_key, players_key, banned_key, state_key = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local events_key, channel = KEYS[8], KEYS[9]
local max_seq = tonumber(ARGV[1])
local epoch = ARGV[3]

-- the old build is unlinked (freed off the main thread) rather than deleted by the
-- rename: freeing a board of a million players would stall Redis for a second
local function install(staged, live)
  rcall('UNLINK', live)
  if rcall('EXISTS', staged) == 1 then
    rcall('RENAME', staged, live)
  end
end

install(staged_board, board_key)
install(staged_players, players_key)
install(staged_banned, banned_key)

local periods = {} -- period id -> ms its keys stay
local keep = {}
for value in string.gmatch(ARGV[5], '[^,]+') do
  keep[#keep + 1] = tonumber(value)
end
local period_keys = {} -- period id -> { live ranking, live players, live banned }
local index = 0
for period_id in string.gmatch(ARGV[4], '[^,]+') do
  local first = 10 + 6 * index
  index = index + 1
  install(KEYS[first], KEYS[first + 3])
  install(KEYS[first + 1], KEYS[first + 4])
  install(KEYS[first + 2], KEYS[first + 5])
  periods[period_id] = keep[index]
  period_keys[period_id] = { KEYS[first + 3], KEYS[first + 4], KEYS[first + 5] }
end

-- an update applied after the staged stream: its increase in one ranking (a sorted
-- set and its players hash), under the update's tie
local function move(ranked_key, ranked_players, fields, tie, user_id, keep_ms)
  local info = rcall('HGET', ranked_players, user_id)
  local old_member = info and entry_member(info, user_id)
  local score = 0
  if old_member then
    score = tonumber(rcall('ZSCORE', ranked_key, old_member) or '0')
    rcall('ZREM', ranked_key, old_member)
  end
  score = score + tonumber(fields.delta)
  if score > 0 then
    rcall('ZADD', ranked_key, string.format('%d', score), tie_member(tie, user_id))
    rcall('HSET', ranked_players, user_id, tie .. '|' .. fields.ts .. '|' .. fields.username)
    if keep_ms and rcall('PTTL', ranked_players) < 0 then
      rcall('PEXPIRE', ranked_key, keep_ms)
      rcall('PEXPIRE', ranked_players, keep_ms)
    end
  else
    rcall('HDEL', ranked_players, user_id)
  end
end

-- an update of a player banned since: its increase in the entry kept for an unban
local function keep_banned(key, fields, tie, user_id, kept)
  local score = tonumber(string.match(kept, '|(%d+)$') or '0') + tonumber(fields.delta)
  local entry = '-'
  if score > 0 then
    entry = tie .. '|' .. fields.ts .. '|' .. fields.username .. '|' .. string.format('%d', score)
  end
  rcall('HSET', key, user_id, entry)
end

local caught_up = 0
for _, entry in ipairs(rcall('XRANGE', events_key, '(' .. ARGV[2], '+')) do
  local fields = {}
  for i = 1, #entry[2], 2 do
    fields[entry[2][i]] = entry[2][i + 1]
  end
  if fields.type == 'score_updated' then
    local seq, user_id = tonumber(fields.seq), fields.user_id
    local tie = bc_tie(seq)
    local banned = rcall('HGET', banned_key, user_id)
    if banned then
      keep_banned(banned_key, fields, tie, user_id, banned)
      for period_id in string.gmatch(fields.periods or '', '[^,]+') do
        local live = period_keys[period_id]
        if live then
          keep_banned(live[3], fields, tie, user_id, rcall('HGET', live[3], user_id) or '-|0')
          if rcall('PTTL', live[3]) < 0 then
            rcall('PEXPIRE', live[3], periods[period_id])
          end
        end
      end
    else
      move(board_key, players_key, fields, tie, user_id, nil)
      for period_id in string.gmatch(fields.periods or '', '[^,]+') do
        if periods[period_id] then
          local live = period_keys[period_id]
          move(live[1], live[2], fields, tie, user_id, periods[period_id])
        end
      end
    end
    caught_up = caught_up + 1
    if seq > max_seq then
      max_seq = seq
    end
  end
end

local current = tonumber(rcall('HGET', state_key, 'seq') or '0')
if current > max_seq then
  max_seq = current
end
local seq_text = string.format('%d', max_seq)
rcall('HSET', state_key, 'epoch', epoch, 'seq', seq_text, 'players', rcall('HLEN', players_key))
rcall('SPUBLISH', channel, 'rebuilt ' .. epoch .. ' ' .. seq_text)
return { S_OK, caught_up, max_seq }
