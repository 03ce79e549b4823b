-- submit_score.lua: the one atomic score update. In order: rate limit (every attempt
-- counts) -> the action token exists and belongs to this user -> unused -> bound to
-- this session, action type and device -> increase within the token's maximum and the total
-- within the ceiling -> anti-cheat verdict -> apply: move the player on the board,
-- append the event to the stream and publish it.
--
-- From the ownership check on, the token is burned whatever the outcome, so a
-- rejected cheat cannot retry; a token presented by another user is left alone.
-- Refusals past the ownership check are appended to the stream as `score_rejected`
-- events for the audit trail (nothing is published for them).
--
-- Board members, players and banned entries: include/board_change.lua.
--
-- Input:
--   KEYS[1]  rate-limit state of the score-update rule for this user (string)
--   KEYS[2]  the action token: sb:{board}:tok:<sha256> (hash; after it is spent it
--            also keeps the request's fingerprint and the answer given, so the owner's
--            retry of the same request gets the same answer for the token's lifetime)
--   KEYS[3]  the board (sorted set of members, score = points)
--   KEYS[4]  the board's players (hash: user id -> '<tie>|<updated ms>|<username>')
--   KEYS[5]  this player's anti-cheat history (hash; fields in include/anticheat.lua)
--   KEYS[6]  the board's state (hash: epoch, seq, players). Absent: the board is
--            missing or being rebuilt and takes no update. A players count that no
--            longer matches the sorted set and the players hash means one of them was
--            lost: the state is deleted (the board must be rebuilt), never read as 0.
--   KEYS[7]  the board's event stream (no MAXLEN: the syncer trims what it persisted)
--   KEYS[8]  the board's update channel (pub/sub)
--   KEYS[9]  the board's banned players (hash; include/board_change.lua)
--   KEYS[10] the player's unspent tokens (sorted set; issue_action_token.lua): the
--            token leaves it as it is spent
--   KEYS[11] the board's population sketch (hash; include/anticheat.lua)
--   KEYS[12] the accounts playing from the request's device (sorted set: user id ->
--            last ms; include/anticheat.lua), KEYS[13] the devices this player plays
--            from (device id -> last ms): both unused without a device (ARGV[25] '')
--   KEYS[14..] two per period of ARGV[21], in its order: the current
--            period's ranking (sorted set) and its players hash, same encodings as
--            KEYS[3] and KEYS[4]
--   ARGV[1]  user id                 ARGV[2]  username
--   ARGV[3]  session id, '' = the token's      ARGV[4]  action type, '' = the token's
--   ARGV[5]  increase (decimal digits, >= 1)
--   ARGV[6]  rate limit per period   ARGV[7]  rate period in microseconds
--   ARGV[8]  score ceiling (largest total a player may reach)
--   ARGV[9]  anti-cheat mode: 'enforce' | 'flag' | 'off'
--   ARGV[10] anti-cheat thresholds (JSON: those of include/anticheat.lua, and `flag`
--            and `reject`, the risks from which an update is flagged or rejected)
--   ARGV[11] claimed duration of the action in microseconds, '' = not claimed
--   ARGV[12] claimed level of the action, '' = not claimed
--   ARGV[13] N of the top N that subscribers are sent
--   ARGV[14] event id (UUID)         ARGV[15] token hash      ARGV[16] board name
--   ARGV[17] client address          ARGV[18] client user agent
--   ARGV[19] the action's telemetry (JSON text, '' = none)
--   ARGV[20] the request's fingerprint (a digest of its body): a retry with the same
--            fingerprint replays the first answer; the automation check compares it
--            with the previous submission's
--   ARGV[21] the board's periods, comma-separated kinds ('daily,weekly'; '' = none):
--            the update also counts in the current period of each (KEYS[14..])
--   ARGV[22] how long a closed period's ranking stays in Redis, in ms (each period
--            key expires that long after its period ends, set when a player first
--            enters it)
--   ARGV[23] clock offset in microseconds added to Redis TIME ('0'; tests only)
--   ARGV[24] the periods whose keys were given, in the order of ARGV[21]:
--            '<id>|<starts ms>|<ends ms>' each, comma-separated. Each must hold the
--            instant of Redis TIME (plus ARGV[23]), else nothing is done and the answer
--            names the current ones (include/periods.lua): the calendar is worked out
--            here only then
--   ARGV[25] the device the request's session was opened from ('' = none): a token
--            issued to a session on another device is refused
--   ARGV[26] the request's trace context (a W3C traceparent; '' = not traced): kept
--            in the stream entry's `trace` field, so the syncer's span that persists
--            it joins the request's trace
--   (ARGV 17-19 are kept in the stream only, for the audit trail)
--
-- Output:
--   { 'PERIOD_MOVED', ids }        a period ended between naming its keys and now:
--                                  nothing done; `ids` (comma-separated) are the
--                                  current ones, to call again with their keys
--   { 'BOARD_NOT_READY' }          nothing done; retry after the rebuild
--   { 'BOARD_LOST' }               nothing done; the board's state was deleted because
--                                  its sorted set or players hash went missing
--   { 'BANNED' }                   the player is banned from the board; nothing done
--   { 'OK', new_score, new_rank, old_score, old_rank (0 = was not ranked), stream_id,
--     risk, flagged (0/1), rate_remaining, rate_reset_us, total_players,
--     top_json ('' unless the change touched the top N), sequence, epoch,
--     reasons ('<check>:<risk>,...', highest first; '' = none fired),
--     periods (JSON [[kind, period id, score, rank, ends ms], ...]; '[]' = none) }
--   { 'REPLAYED', rate_remaining, rate_reset_us, status, ... }
--                                  the owner retried a spent token with the same
--                                  request: the first answer, nothing changed; for OK
--                                  `new_score, new_rank, old_score, old_rank, periods`,
--                                  else the
--                                  refusal's own fields
--   Published: the change, as bc_publish in include/board_change.lua describes it.
--   { 'RATE_LIMITED', retry_after_us, reset_us }
--   { 'TOKEN_UNKNOWN' }            no such token (never issued, or expired)
--   { 'TOKEN_NOT_OWNED' }          issued to another user; left untouched
--   { 'TOKEN_USED' }               already spent
--   { 'TOKEN_MISMATCH', field }    bound to another 'session', 'action_type' or 'device'
--   { 'ABOVE_MAX', max }           increase above the token's maximum
--   { 'OVERFLOW', ceiling }        the total would pass the ceiling
--   { 'ANTICHEAT_REJECTED', reason, risk, reasons }  reason: the check with the highest
--                                  risk (a pace window's check, such as
--                                  points_per_minute | impossible_duration |
--                                  missing_duration | impossible_level |
--                                  points_per_second | outlier | automation |
--                                  device_farm | device_hopping)

-- @include clock_and_gcra
-- @include board_entries
-- @include board_change
-- @include anticheat
-- @include periods

local S_OK = 'OK'
local S_PERIOD_MOVED = 'PERIOD_MOVED'
local S_BANNED = 'BANNED'
local S_REPLAYED = 'REPLAYED'
local S_RATE_LIMITED = 'RATE_LIMITED'
local S_TOKEN_UNKNOWN = 'TOKEN_UNKNOWN'
local S_TOKEN_NOT_OWNED = 'TOKEN_NOT_OWNED'
local S_TOKEN_USED = 'TOKEN_USED'
local S_TOKEN_MISMATCH = 'TOKEN_MISMATCH'
local S_ABOVE_MAX = 'ABOVE_MAX'
local S_OVERFLOW = 'OVERFLOW'
local S_ANTICHEAT_REJECTED = 'ANTICHEAT_REJECTED'

local rcall = redis.call
local rate_key, token_key, board_key, players_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local stats_key, state_key, events_key, channel = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local banned_key, open_key, sketch_key = KEYS[9], KEYS[10], KEYS[11]

local user_id, username = ARGV[1], ARGV[2]
local want_session, want_action = ARGV[3], ARGV[4]
local increase_text = ARGV[5]
local increase = tonumber(increase_text)
local ceiling = tonumber(ARGV[8])
local anticheat_mode = ARGV[9]
local claimed_us, claimed_level = tonumber(ARGV[11]), tonumber(ARGV[12])
local top_n = tonumber(ARGV[13])
local event_id, token_hash, board = ARGV[14], ARGV[15], ARGV[16]
local client_ip, user_agent, action_data = ARGV[17], ARGV[18], ARGV[19]
local fingerprint = ARGV[20]
local period_kinds, period_grace_ms = ARGV[21], tonumber(ARGV[22])
local device_id = ARGV[25]
local trace = ARGV[26]

local function int(n)
  return string.format('%d', n)
end

local now = redis_now_us() + tonumber(ARGV[23])
local now_ms = int(math.floor(now / 1000))

-- the periods this update counts in, at Redis TIME: the keys given must be theirs
local current_periods = {}
local instant = math.floor(now / 1000)
local kinds_listed = {}
for kind in string.gmatch(period_kinds, '[^,]+') do
  kinds_listed[#kinds_listed + 1] = kind
end
local moved, period_ends_text = false, {}
for period in string.gmatch(ARGV[24], '[^,]+') do
  local period_id, starts, ends_text = string.match(period, '^([^|]+)|(%d+)|(%d+)$')
  local ends = tonumber(ends_text)
  starts = tonumber(starts)
  if not ends or instant < starts or instant >= ends then
    moved = true
  end
  current_periods[#current_periods + 1] = { kinds_listed[#current_periods + 1], period_id, ends }
  period_ends_text[#current_periods] = ends_text
end
if moved or #current_periods ~= #kinds_listed then
  local current_ids = {}
  for _, kind in ipairs(kinds_listed) do
    current_ids[#current_ids + 1] = period_at(kind, instant)
  end
  return { S_PERIOD_MOVED, table.concat(current_ids, ',') }
end

-- a stream entry of the fields and values given, with the request's trace context when
-- it is traced (an untraced call passes them straight through: no table is built)
local function append_event(...)
  if trace == '' then
    return rcall('XADD', events_key, '*', ...)
  end
  local fields = { ... }
  fields[#fields + 1] = 'trace'
  fields[#fields + 1] = trace
  return rcall('XADD', events_key, '*', unpack(fields))
end

local function audit_rejection(status, reason, session_id, action_type, risk, reasons)
  append_event('type', 'score_rejected', 'event_id', event_id,
    'board', board, 'user_id', user_id, 'username', username, 'status', status,
    'reason', reason, 'reasons', reasons or '',
    'delta', increase_text, 'action_type', action_type, 'session_id', session_id,
    'token_hash', token_hash, 'risk', risk, 'ip', client_ip, 'user_agent', user_agent,
    'action_data', action_data, 'ts', now_ms)
end

-- 0. the board is whole, and the player may play on it
local epoch, not_whole = bc_whole(state_key, players_key, board_key)
if not epoch then
  return { not_whole }
end
if rcall('HEXISTS', banned_key, user_id) == 1 then
  return { S_BANNED }
end

-- 1. rate limit
local admitted, rate_remaining, retry_after, rate_reset =
  gcra(rate_key, tonumber(ARGV[6]), tonumber(ARGV[7]), now, 1, 0)
if admitted == 0 then
  return { S_RATE_LIMITED, retry_after, rate_reset }
end

-- 2. the token
local token = rcall('HMGET', token_key, 'user', 'session', 'action', 'max', 'used', 'fp',
  'answer', 'issued_us', 'device')
if not token[1] then
  return { S_TOKEN_UNKNOWN }
end
if token[1] ~= user_id then
  audit_rejection(S_TOKEN_NOT_OWNED, 'not_owner', want_session, want_action, '0')
  return { S_TOKEN_NOT_OWNED }
end
if token[5] == '1' then
  if token[6] == fingerprint and token[7] then
    local replay = { S_REPLAYED, rate_remaining, rate_reset }
    for field in string.gmatch(token[7], '[^|]+') do
      replay[#replay + 1] = field
    end
    return replay
  end
  return { S_TOKEN_USED }
end
-- From here on the token is spent: every answer marks it used and keeps the answer
-- with the request's fingerprint, for the owner's retry (one write, whatever the
-- outcome, as the script's last)
local function answer(reply)
  rcall('ZREM', open_key, token_hash)
  rcall('HSET', token_key, 'used', '1', 'fp', fingerprint, 'answer', table.concat(reply, '|'))
  return reply
end
local session_id, action_type, max_increase = token[2], token[3], tonumber(token[4])
local token_expires_ms = int(math.floor(now / 1000) + math.max(0, rcall('PTTL', token_key)))
if want_session ~= '' and want_session ~= session_id then
  audit_rejection(S_TOKEN_MISMATCH, 'session', want_session, action_type, '0')
  return answer({ S_TOKEN_MISMATCH, 'session' })
end
if want_action ~= '' and want_action ~= action_type then
  audit_rejection(S_TOKEN_MISMATCH, 'action_type', session_id, want_action, '0')
  return answer({ S_TOKEN_MISMATCH, 'action_type' })
end
if token[9] and token[9] ~= '' and token[9] ~= device_id then
  audit_rejection(S_TOKEN_MISMATCH, 'device', session_id, action_type, '0')
  return answer({ S_TOKEN_MISMATCH, 'device' })
end

-- 3. the increase
if increase > max_increase then
  audit_rejection(S_ABOVE_MAX, 'above_max', session_id, action_type, '0')
  return answer({ S_ABOVE_MAX, token[4] })
end
local old_member, old_score, old_rank, old_score_text = nil, 0, 0, '0'
local player = rcall('HGET', players_key, user_id)
if player then
  old_member = entry_member(player, user_id)
  local score = rcall('ZSCORE', board_key, old_member)
  if score then
    old_score, old_score_text = tonumber(score), score
    old_rank = rcall('ZREVRANK', board_key, old_member) + 1
  end
end
local new_score = old_score + increase
if new_score > ceiling then
  audit_rejection(S_OVERFLOW, 'overflow', session_id, action_type, '0')
  return answer({ S_OVERFLOW, ARGV[8] })
end

-- 4. anti-cheat: the player's history, judged and updated in this same step
local wait_us = now - (tonumber(token[8]) or now)
local risk, reason, reasons_text, verdict = 0, '', '', 'approved'
local stats, judged, thresholds
if anticheat_mode ~= 'off' then
  local reasons
  thresholds = cjson.decode(ARGV[10])
  stats = ac_history(stats_key, thresholds)
  local device = nil
  if device_id ~= '' then
    device = { id = device_id, user = user_id, players_key = KEYS[12], devices_key = KEYS[13] }
  end
  risk, reasons, judged = ac_judge(thresholds, stats, now, increase, action_type, claimed_us,
    claimed_level, fingerprint, wait_us, sketch_key, device)
  reasons_text = ac_reasons_text(reasons)
  reason = reasons[1] and reasons[1][1] or ''
  verdict = ac_verdict(thresholds, risk, reasons)
end
local risk_text = string.format('%.3f', risk)
if verdict == 'rejected' and anticheat_mode == 'enforce' then
  ac_remember(stats_key, thresholds, stats, now, increase, false, judged, fingerprint, wait_us,
    sketch_key)
  audit_rejection(S_ANTICHEAT_REJECTED, reason, session_id, action_type, risk_text,
    reasons_text)
  return answer({ S_ANTICHEAT_REJECTED, reason, risk_text, reasons_text })
end
local flagged = verdict ~= 'approved' and 1 or 0

-- 5. apply
local sequence = rcall('HINCRBY', state_key, 'seq', 1)
if not player then
  rcall('HINCRBY', state_key, 'players', 1)
end
local tie = bc_tie(sequence)
local new_member = tie_member(tie, user_id)
local new_score_text, sequence_text = int(new_score), int(sequence)
if old_member then
  rcall('ZREM', board_key, old_member)
end
rcall('ZADD', board_key, new_score_text, new_member)
local new_rank = rcall('ZREVRANK', board_key, new_member) + 1
local player_entry = tie .. '|' .. now_ms .. '|' .. username
rcall('HSET', players_key, user_id, player_entry)
if anticheat_mode ~= 'off' then
  ac_remember(stats_key, thresholds, stats, now, increase, true, judged, fingerprint, wait_us,
    sketch_key)
end
local total = rcall('ZCARD', board_key)

-- the current period of each of the board's periods: same member, so ties there too
-- go to the earlier achiever
local periods, period_ids = {}, {} -- (periods: each one's JSON array)
for index, current in ipairs(current_periods) do
  local kind, period_id, ends_ms = current[1], current[2], current[3]
  local period_board, period_players = KEYS[12 + 2 * index], KEYS[13 + 2 * index]
  -- a player already in this period holds it under their all-time member (every
  -- update moves both); the players hash is read only when that is not so
  local previous, previous_member = true, old_member
  local held = old_member and rcall('ZSCORE', period_board, old_member)
  if not held then
    previous = rcall('HGET', period_players, user_id)
    previous_member = previous and entry_member(previous, user_id)
    held = previous_member and rcall('ZSCORE', period_board, previous_member)
  end
  local period_score = increase
  if held then
    period_score = tonumber(held) + increase
    rcall('ZREM', period_board, previous_member)
  end
  local period_score_text = int(period_score)
  rcall('ZADD', period_board, period_score_text, new_member)
  rcall('HSET', period_players, user_id, player_entry)
  if not previous then -- (relative to the script's clock, which tests may offset)
    local keep_ms = int(ends_ms + period_grace_ms - math.floor(now / 1000))
    rcall('PEXPIRE', period_board, keep_ms)
    rcall('PEXPIRE', period_players, keep_ms)
  end
  local period_rank = rcall('ZREVRANK', period_board, new_member) + 1
  -- kinds and period ids are [a-z0-9:-W] only: nothing in them needs escaping
  periods[index] = '["' .. kind .. '","' .. period_id .. '",' .. period_score_text .. ','
    .. period_rank .. ',' .. period_ends_text[index] .. ']'
  period_ids[index] = period_id
end
local periods_json = '[' .. table.concat(periods, ',') .. ']'

local top = nil
if new_rank <= top_n or (old_rank > 0 and old_rank <= top_n) then
  top = bc_top(board_key, players_key, top_n)
end
local top_json = top and cjson.encode(top) or ''

local old_rank_text, new_rank_text = int(old_rank), int(new_rank)
local flagged_text = flagged == 1 and '1' or '0'
local stream_id = append_event('type', 'score_updated',
  'event_id', event_id, 'seq', sequence_text, 'token_max', token[4],
  'token_expires_ms', token_expires_ms, 'board', board, 'user_id', user_id,
  'username', username,
  'delta', increase_text, 'old_score', old_score_text, 'new_score', new_score_text,
  'old_rank', old_rank_text, 'new_rank', new_rank_text, 'action_type', action_type,
  'session_id', session_id, 'token_hash', token_hash, 'risk', risk_text,
  'flagged', flagged_text, 'reason', reason, 'reasons', reasons_text,
  'token_wait_ms', int(math.floor(wait_us / 1000)), 'ip', client_ip, 'user_agent', user_agent,
  'action_data', action_data, 'periods', table.concat(period_ids, ','), 'ts', now_ms)

bc_publish(channel, { seq = sequence_text, id = stream_id, board = board, user_id = user_id,
  username = username, delta = increase_text, old_score = old_score_text,
  new_score = new_score_text, old_rank = old_rank_text, new_rank = new_rank_text,
  ts = now_ms, total = int(total), epoch = epoch }, top)

answer({ S_OK, new_score_text, new_rank_text, old_score_text, old_rank_text, periods_json })
return { S_OK, new_score_text, new_rank, old_score_text, old_rank, stream_id, risk_text,
  flagged, rate_remaining, rate_reset, total, top_json, sequence, epoch, reasons_text,
  periods_json }
