-- issue_action_token.lua: rate-limit the caller, then store a new one-time action
-- token (by its SHA-256 only) bound to user, session, action type, maximum and the
-- device the caller signed in from, unless
-- the player already holds as many unspent tokens as allowed.
--
-- Input:
--   KEYS[1]  rate-limit state of the action-token rule for this user (string)
--   KEYS[2]  the token: sb:{board}:tok:<sha256> (hash, expires after the TTL)
--   KEYS[3]  the board's banned players (hash): a banned player gets no token
--   KEYS[4]  the player's unspent tokens (sorted set: token hash -> expiry in ms;
--            submit_score.lua removes a token as it spends it)
--   ARGV[1]  rate limit: requests per period (integer >= 1)
--   ARGV[2]  rate limit: period in microseconds
--   ARGV[3]  user id
--   ARGV[4]  session id
--   ARGV[5]  action type
--   ARGV[6]  maximum score increase the token allows (integer >= 1)
--   ARGV[7]  token lifetime in milliseconds
--   ARGV[8]  the token's hash (its member in KEYS[4])
--   ARGV[9]  most unspent tokens a player may hold
--   ARGV[10] the device the caller's session was opened from ('' = none)
--
-- Output:
--   { 'OK', remaining, reset_us }                 token stored
--   { 'RATE_LIMITED', retry_after_us, reset_us }  nothing stored
--   { 'TOKEN_EXISTS' }                            hash collision; nothing stored
--   { 'BANNED' }                                  the player is banned; nothing stored
--   { 'TOO_MANY_OPEN', retry_after_us }           the player holds ARGV[9] unspent
--                                                 tokens; nothing stored (not counted
--                                                 by the rate limit); retry_after_us:
--                                                 until the first of them expires
--
-- Fields of the token hash: user, session, action, max, issued_us, used ('0'/'1'),
-- device ('' = none).

-- @include clock_and_gcra

local S_OK = 'OK'
local S_RATE_LIMITED = 'RATE_LIMITED'
local S_TOKEN_EXISTS = 'TOKEN_EXISTS'
local S_BANNED = 'BANNED'
local S_TOO_MANY_OPEN = 'TOO_MANY_OPEN'

local rcall = redis.call
local rate_key = KEYS[1]
local token_key = KEYS[2]
local open_key = KEYS[4]

if rcall('HEXISTS', KEYS[3], ARGV[3]) == 1 then
  return { S_BANNED }
end
local now = redis_now_us()
local now_ms = math.floor(now / 1000)
-- read-only until the rate limit's write, so a Redis out of memory refuses the script
-- before it changes anything (a script that has written once runs to its end)
local most_open = tonumber(ARGV[9])
local open = rcall('ZRANGEBYSCORE', open_key, now_ms + 1, '+inf', 'WITHSCORES', 'LIMIT', 0,
  most_open)
if #open >= 2 * most_open then
  return { S_TOO_MANY_OPEN, math.max(1, (tonumber(open[2]) - now_ms) * 1000) }
end
local admitted, remaining, retry_after, reset =
  gcra(rate_key, tonumber(ARGV[1]), tonumber(ARGV[2]), now, 1, 0)
if admitted == 0 then
  return { S_RATE_LIMITED, retry_after, reset }
end
if rcall('EXISTS', token_key) == 1 then
  return { S_TOKEN_EXISTS }
end

rcall('HSET', token_key, 'user', ARGV[3], 'session', ARGV[4], 'action', ARGV[5],
  'max', ARGV[6], 'issued_us', string.format('%d', now), 'used', '0', 'device', ARGV[10])
rcall('PEXPIRE', token_key, ARGV[7])
rcall('ZREMRANGEBYSCORE', open_key, '-inf', now_ms)
rcall('ZADD', open_key, now_ms + tonumber(ARGV[7]), ARGV[8])
rcall('PEXPIRE', open_key, ARGV[7])
return { S_OK, remaining, reset }
