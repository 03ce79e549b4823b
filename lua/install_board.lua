-- install_board.lua: swap a board rebuilt off to the side into place, then catch up
-- with the updates applied while it was being built, so readers never see an empty
-- board and no update is lost.
--
-- Input:
--   KEYS[1]  the staged board (sorted set; renamed onto KEYS[3])
--   KEYS[2]  the staged players (hash; renamed onto KEYS[4])
--   KEYS[3]  the board (sorted set of '<15-digit inverted sequence>:<user id>')
--   KEYS[4]  the board's players (hash: user id -> '<member>|<updated ms>|<username>')
--   KEYS[5]  the board's update sequence (integer)
--   KEYS[6]  the board's ready marker (set here)
--   KEYS[7]  the board's event stream
--   ARGV[1]  highest update sequence the staged board includes
--   ARGV[2]  last stream id read while staging ('0-0' when none); later events are
--            applied on top when newer than what the board holds for their player
--
-- Output: { 'OK', caught_up } where caught_up counts the events applied on top.
--
-- Errors: none.

local S_OK = 'OK'
local INVERT = 999999999999999

local rcall = redis.call
local staged_board, staged_players = KEYS[1], KEYS[2]
local board_key, players_key, seq_key = KEYS[3], KEYS[4], KEYS[5]
local ready_key, events_key = KEYS[6], KEYS[7]
local max_seq = tonumber(ARGV[1])

local function install(staged, live)
  if rcall('EXISTS', staged) == 1 then
    rcall('RENAME', staged, live)
  else
    rcall('DEL', live)
  end
end

install(staged_board, board_key)
install(staged_players, players_key)

local caught_up = 0
for _, entry in ipairs(rcall('XRANGE', events_key, '(' .. ARGV[2], '+')) do
  local fields = {}
  for i = 1, #entry[2], 2 do
    fields[entry[2][i]] = entry[2][i + 1]
  end
  if fields.type == 'score_updated' then
    local seq = tonumber(fields.seq)
    local info = rcall('HGET', players_key, fields.user_id)
    local old_member = info and string.match(info, '^([^|]+)')
    local held = old_member and (INVERT - tonumber(string.match(old_member, '^(%d+)'))) or -1
    if seq > held then
      local member = string.format('%015d', INVERT - seq) .. ':' .. fields.user_id
      if old_member then
        rcall('ZREM', board_key, old_member)
      end
      rcall('ZADD', board_key, fields.new_score, member)
      rcall('HSET', players_key, fields.user_id,
        member .. '|' .. fields.ts .. '|' .. fields.username)
      caught_up = caught_up + 1
    end
    if seq > max_seq then
      max_seq = seq
    end
  end
end

if max_seq > tonumber(rcall('GET', seq_key) or '0') then
  rcall('SET', seq_key, string.format('%d', max_seq))
end
rcall('SET', ready_key, '1')
return { S_OK, caught_up }
