-- include/clock_and_gcra.lua: shared helpers, pasted by the loader where a script
-- says `-- @include clock_and_gcra`. Not a command of its own.
--
-- redis_now_us()                      Redis TIME in microseconds
-- gcra(key, limit, period_us, now_us) one GCRA step on `key` (a string holding the
--   theoretical arrival time); returns allowed, remaining, retry_after_us, reset_us,
--   and stores the new state only when the request is admitted.

local function redis_now_us()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end

local function gcra(state_key, limit, period, now)
  local emission = period / limit
  local tat = tonumber(redis.call('GET', state_key) or now)
  if tat < now then
    tat = now
  end
  local new_tat = tat + emission
  local allow_at = new_tat - period
  if now < allow_at then
    return false, 0, math.ceil(allow_at - now), math.ceil(tat - now)
  end
  redis.call('SET', state_key, string.format('%d', math.ceil(new_tat)),
    'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
  return true, math.floor((now - allow_at) / emission), 0, math.ceil(new_tat - now)
end
