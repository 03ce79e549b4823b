-- rate_limit.lua: admit or refuse one request under a GCRA rule (a token bucket
-- holding `limit` requests that refills evenly over `period`).
--
-- Input:
--   KEYS[1]  rate-limit state of one rule and subject (string: theoretical arrival
--            time in microseconds)
--   ARGV[1]  limit: requests admitted in a burst, and per period (integer >= 1)
--   ARGV[2]  period in microseconds (integer >= 1)
--
-- Output: { allowed, remaining, retry_after_us, reset_us }
--   allowed         1 when the request is admitted, 0 when refused
--   remaining       requests that could still be admitted right now
--   retry_after_us  wait before the next request would be admitted (0 if now)
--   reset_us        wait until the bucket is full again
--
-- Errors: none; time comes from Redis TIME so every app instance agrees.

local rcall = redis.call
local state_key = KEYS[1]
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])

local emission = period / limit
local clock = rcall('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])

local tat = tonumber(rcall('GET', state_key) or now)
if tat < now then
  tat = now
end

local new_tat = tat + emission
local allow_at = new_tat - period
if now < allow_at then
  return { 0, 0, math.ceil(allow_at - now), math.ceil(tat - now) }
end

rcall('SET', state_key, string.format('%d', math.ceil(new_tat)),
  'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
local remaining = math.floor((now - allow_at) / emission)
return { 1, remaining, 0, math.ceil(new_tat - now) }
