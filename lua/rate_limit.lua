-- rate_limit.lua: admit or refuse a request, or take several at once, under a GCRA rule
-- (a bucket holding `limit` requests that refills evenly over `period`).
--
-- Input:
--   KEYS[1]  rate-limit state of one rule and subject (string: theoretical arrival
--            time in microseconds)
--   ARGV[1]  limit: requests admitted in a burst, and per period (integer >= 1)
--   ARGV[2]  period in microseconds (integer >= 1)
--   ARGV[3]  how many requests to admit at once (integer >= 1); fewer are admitted
--            when the bucket holds fewer
--   ARGV[4]  requests taken earlier and not used, given back first (integer >= 0)
--
-- Output: { admitted, remaining, retry_after_us, reset_us }
--   admitted        how many requests were admitted (0: refused)
--   remaining       requests that could still be admitted right now
--   retry_after_us  wait before the next request would be admitted (0 if now)
--   reset_us        wait until the bucket is full again
--
-- Errors: none. Time comes from Redis TIME so every app instance agrees.

-- @include clock_and_gcra

local admitted, remaining, retry_after, reset = gcra(
  KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), redis_now_us(), tonumber(ARGV[3]),
  tonumber(ARGV[4]))
return { admitted, remaining, retry_after, reset }
