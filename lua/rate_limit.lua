-- rate_limit.lua: admit or refuse one request under a GCRA rule (a bucket holding
-- `limit` requests that refills evenly over `period`).
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
-- Errors: none. Time comes from Redis TIME so every app instance agrees.

-- @include clock_and_gcra

local allowed, remaining, retry_after, reset =
  gcra(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), redis_now_us())
return { allowed and 1 or 0, remaining, retry_after, reset }
