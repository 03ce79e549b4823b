-- include/clock_and_gcra.lua: shared helpers, pasted by the loader where a script
-- says `-- @include clock_and_gcra`. Not a command of its own.
--
-- redis_now_us()                      Redis TIME in microseconds
-- gcra(key, limit, period_us, now_us) one GCRA step on `key` (a string holding the
--   theoretical arrival time); returns allowed, remaining, retry_after_us, reset_us,
--   and stores the new state only when the request is admitted.
-- gcra_take(key, limit, period_us, now_us, wanted, returned) the same for up to
--   `wanted` requests at once, after giving back `returned` taken earlier and not
--   used; returns how many were admitted (0 when refused) first.

local function redis_now_us()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end

-- Give back `returned` requests taken earlier and not used, then admit up to `wanted`
-- at once (each costs one emission interval); returns how many were admitted (0:
-- refused), remaining, retry_after_us, reset_us.
local function gcra_take(state_key, limit, period, now, wanted, returned)
  local emission = period / limit
  local tat = tonumber(redis.call('GET', state_key) or now) - returned * emission
  if tat < now then
    tat = now
  end
  -- request i is admitted while tat + i * emission - period <= now
  local admitted = math.max(0, math.min(wanted, math.floor((now + period - tat) / emission)))
  while admitted > 0 and tat + admitted * emission - period > now do
    admitted = admitted - 1
  end
  while admitted < wanted and tat + (admitted + 1) * emission - period <= now do
    admitted = admitted + 1
  end
  local new_tat = tat + admitted * emission
  if admitted > 0 or returned > 0 then
    redis.call('SET', state_key, string.format('%d', math.ceil(new_tat)),
      'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
  end
  if admitted < 1 then
    return 0, 0, math.ceil(tat + emission - period - now), math.ceil(tat - now)
  end
  return admitted, math.floor((now - (new_tat - period)) / emission), 0, math.ceil(new_tat - now)
end

local function gcra(state_key, limit, period, now)
  local admitted, remaining, retry_after, reset = gcra_take(state_key, limit, period, now, 1, 0)
  return admitted > 0, remaining, retry_after, reset
end
