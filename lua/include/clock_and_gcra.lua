-- include/clock_and_gcra.lua: shared helpers, pasted by the loader where a script
-- says `-- @include clock_and_gcra`. Not a command of its own.
--
-- redis_now_us()                      Redis TIME in microseconds
-- gcra(key, limit, period_us, now_us, wanted, returned) GCRA on `key` (a string
--   holding the theoretical arrival time): gives back `returned` requests taken
--   earlier and not used, then admits up to `wanted` at once; returns how many were
--   admitted (0: refused), remaining, retry_after_us, reset_us, and stores the new
--   state only when something was admitted or given back.

local function redis_now_us()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end

-- each request admitted costs one emission interval (period / limit)
local function gcra(state_key, limit, period, now, wanted, returned)
  local emission = period / limit
  local tat = tonumber(redis.call('GET', state_key) or now)
  if returned > 0 then
    tat = tat - returned * emission
  end
  if tat < now then
    tat = now
  end
  -- request i is admitted while tat + i * emission - period <= now
  local admitted = wanted
  if tat + wanted * emission - period > now then -- not all of them: as many as fit
    admitted = math.max(0, math.floor((now + period - tat) / emission))
    while admitted > 0 and tat + admitted * emission - period > now do
      admitted = admitted - 1
    end
    while admitted + 1 < wanted and tat + (admitted + 1) * emission - period <= now do
      admitted = admitted + 1
    end
  end
  local new_tat = tat + admitted * emission
  if admitted > 0 or returned > 0 then
    redis.call('SET', state_key, string.format('%d', math.ceil(new_tat)),
      'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
  end
  if admitted == 0 then
    return 0, 0, math.ceil(tat + emission - period - now), math.ceil(tat - now)
  end
  return admitted, math.floor((now - new_tat + period) / emission), 0, math.ceil(new_tat - now)
end
