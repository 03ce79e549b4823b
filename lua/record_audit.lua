-- record_audit.lua: append one security event (a refused login, a spent or unknown
-- action token, a logout, a ban...) to the board's event stream, which the syncer
-- persists into audit_log like the score events. Refusals that an attacker can repeat
-- at will are counted per subject and window: the first few are kept one by one, the
-- rest only counted, and the syncer writes one counted record per subject once the
-- window is over, so a flood cannot fill the disk.
--
-- Input:
--   KEYS[1]  the board's event stream
--   KEYS[2]  this window's flood counts (hash: subject -> attempts; expires)
--   ARGV[1]  subject to count under ('' = not counted: always recorded)
--   ARGV[2]  how many events per subject and window are recorded one by one
--   ARGV[3]  lifetime of the flood counts, milliseconds
--   ARGV[4]  event id (UUID)   ARGV[5]  board name   ARGV[6]  event type
--   ARGV[7]  user id ('' = none)   ARGV[8]  client address   ARGV[9]  user agent
--   ARGV[10] result ('' = none: refused, revoked...)   ARGV[11] details (JSON object)
--
-- Output: { 'OK', recorded (1/0), attempts (by this subject in this window; 0 when
--   not counted) }
--   Stream: type 'audit', event_id, board, event_type, user_id, ip, user_agent,
--   result, details, ts.

-- @include clock_and_gcra

local S_OK = 'OK'

local rcall = redis.call
local events_key, floods_key = KEYS[1], KEYS[2]
local subject, sample = ARGV[1], tonumber(ARGV[2])

local attempts = 0
if subject ~= '' then
  attempts = rcall('HINCRBY', floods_key, subject, 1)
  if attempts == 1 then
    rcall('PEXPIRE', floods_key, ARGV[3])
  end
  if attempts > sample then
    return { S_OK, 0, attempts }
  end
end
rcall('XADD', events_key, '*', 'type', 'audit', 'event_id', ARGV[4], 'board', ARGV[5],
  'event_type', ARGV[6], 'user_id', ARGV[7], 'ip', ARGV[8], 'user_agent', ARGV[9],
  'result', ARGV[10], 'details', ARGV[11],
  'ts', string.format('%d', math.floor(redis_now_us() / 1000)))
return { S_OK, 1, attempts }
