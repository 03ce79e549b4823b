-- anticheat.lua: judges one submission against its player's own history, for
-- submit_score.lua, which reads and writes that history in the same atomic step.
--
-- The player's history (the field `h` of a hash, one per player and board; its layout
-- is given by AC_FIELDS below):
--   last_us  time of the previous submission that reached the judge (accepted or not)
--   play_us  the play clock: the instant up to which accepted claims of play
--            (`time_taken`) are accounted for; never more than the slack past the time
--            of the submission that moved it
--   played_us  the play credited to the accepted submissions: each one's claim, else
--            the time since the previous submission (at most population.max_gap_us),
--            never less than min_duration_us
--   n, mean, m2   count, running mean and sum of squared deviations of the accepted
--                 increases (Welford), for the outlier check
--   run      how many submissions in a row had the same fingerprint, evenly spaced
--   gap_us   the time between the previous submission and the one before it
--   wait_us  how long the previous submission's action token waited before its use
--   pop      the bucket of the board's population sketch the player is counted in
--   sig      the previous submission's request fingerprint (increase and telemetry)
--   then, per pace window in the order of the thresholds, the points accepted per
--   sixth of the window: '<bucket>:<points>,...;'
--
-- The board's population sketch (hash, one per board, next to the board): how many
-- players play at each pace, in points per minute of play, on a log scale:
--   b<i>     players whose pace is in [1.25^i, 1.25^(i+1)) (b0: below 1.25)
--   players  players counted;  changes  how many times one moved between buckets
--   limit    the pace above which a player is flagged: `factor` times the upper edge
--            of the bucket where the `quantile` falls (walking down from the fastest,
--            the first bucket with more than 1 - quantile of the players above or in
--            it: a lone cheater at the top does not set the limit), worked out every
--            16 moves once `min_players` are counted (absent until then: the
--            configured `default` stands)
--
-- Thresholds (one JSON object, ARGV of the caller):
--   windows  [{check, us, flag, reject}, ...]: the pace windows, most points accepted
--            in any `us` (measured in sixths of it) before a flag and a rejection
--   slack_us  leeway of the play clock: claimed play may run this far ahead of the
--            wall clock, in total, not per submission
--   time_taken {action type: 'required' | 'token'}: a claim is required; 'token' also
--            bounds it by the age of the action token (the game asks for the token as
--            the action starts). Types left out: the claim is optional
--   levels {action type: [lowest, highest]}: the claimed levels a game allows
--   rates {action type: points per second of play}, level_bonus (fraction more per
--   level above 1, for at most bonus_levels levels), min_duration_us (the floor on a
--   plausible duration)
--   min_history, z_max         the outlier check, once the history holds min_history
--   run, spacing_us, spacing_frac   the automation check: `run` identical, evenly
--                              spaced submissions (gaps within the larger tolerance)
--   population {min_updates, min_play_us, max_gap_us, min_players, quantile, factor,
--              default}: the population check, for players with at least min_updates
--              accepted and min_play_us of play
--   devices {players, devices, window_us}: for a session opened from a registered
--              device (the caller's `device`: {id, user, players_key, devices_key},
--              two sorted sets next to the board), `players` accounts playing from
--              the device within `window_us` fire device_farm, one account playing
--              from `devices` devices fires device_hopping
--
-- Hard checks (risk 1): a pace window's reject threshold, impossible_duration (claimed
-- play the clock cannot hold), missing_duration, impossible_level. Soft checks (a pace
-- window's flag threshold, points_per_second, outlier, automation, population,
-- device_farm, device_hopping) answer
-- 0.6 at their threshold, rising to 0.7 at twice it: one alone flags, two together
-- reject at the default thresholds. The risk is 1 - prod(1 - r) over every check that fired.

-- The history is one field, `h`, of the player's hash: the scalars in this order,
-- separated by spaces ('' when absent), then the pace windows' entries, each window's
-- '<bucket>:<points>,...' ended by ';'. One field read and written whole costs Redis
-- far less than a field per value.
local AC_FIELDS = { 'last_us', 'play_us', 'played_us', 'n', 'mean', 'm2', 'run', 'gap_us',
  'wait_us', 'pop', 'sig' }
local AC_PATTERN = '^' .. string.rep('(%S*) ', #AC_FIELDS) .. '(.*)$'
local AC_BUCKET = math.log(1.25)

-- The history the judge reads, as a table of its fields (absent ones nil) and
-- `paces`, each pace window's entries as text.
local function ac_history(stats_key, p)
  local text = redis.call('HGET', stats_key, 'h')
  local stats, paces = {}, {}
  if text then
    local row = { string.match(text, AC_PATTERN) }
    for i, name in ipairs(AC_FIELDS) do
      if row[i] ~= '' then
        stats[name] = row[i]
      end
    end
    for entries in string.gmatch(row[#AC_FIELDS + 1] or '', '([^;]*);') do
      paces[#paces + 1] = entries
    end
  end
  stats.paces = paces
  stats.fresh = not text
  return stats
end

-- '<check>:<risk>,...' in the order given (the judge's: highest risk first).
local function ac_reasons_text(reasons)
  local listed = {}
  for i, check in ipairs(reasons) do
    listed[i] = check[1] .. ':' .. string.format('%.3f', check[2])
  end
  return table.concat(listed, ',')
end

local function ac_soft(x)
  return 0.6 + 0.1 * math.min(1, math.max(0, x - 1))
end

-- The population sketch's bucket of a pace (points per minute of play).
local function ac_bucket(pace)
  return pace < 1.25 and 0 or math.floor(math.log(pace) / AC_BUCKET)
end

-- Count `member` in a sorted set of members seen within the last `window_ms` (score:
-- when last seen, ms); the set expires with the window. Returns how many it holds.
local function ac_window_count(key, member, now_ms, window_ms)
  redis.call('ZADD', key, now_ms, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms - window_ms)
  redis.call('PEXPIRE', key, window_ms)
  return redis.call('ZCARD', key)
end

-- Returns risk, reasons ({ {name, risk}, ... } highest first), then what ac_remember
-- needs: a table of the windows' kept buckets, the run length, the time since the
-- previous submission and the play clock after this submission, were it accepted.
local function ac_judge(p, stats, now, increase, action_type, claimed_us, level, sig, wait_us,
                        sketch_key, device)
  local found = {}
  local function fired(name, risk)
    found[#found + 1] = { name, risk }
  end
  local last_us = tonumber(stats.last_us)
  local since_last = last_us and (now - last_us) or nil

  -- pace: the points of each window, this increase included
  local paces = {}
  for i, window in ipairs(p.windows) do
    -- entries oldest first; those still in the window are kept as the text they are
    local current = math.floor(now / (window.us / 6))
    local total, kept, current_points = increase, {}, nil
    for entry, bucket, points in string.gmatch(stats.paces[i] or '', '((%d+):(%d+))') do
      local age = current - tonumber(bucket)
      if age < 6 then
        total = total + tonumber(points)
        if age == 0 then
          current_points = tonumber(points)
        else
          kept[#kept + 1] = entry
        end
      end
    end
    paces[i] = { kept, current, current_points }
    if total > window.reject then
      fired(window.check, 1)
    elseif total > window.flag then
      fired(window.check, ac_soft(total / window.flag))
    end
  end

  -- claims bound to the clock: claimed play never overlaps (beyond the slack, in
  -- total), and under 'token' fits in the token's age
  local rule = p.time_taken[action_type]
  local play_us = tonumber(stats.play_us)
  if claimed_us then
    if (play_us and play_us + claimed_us > now + p.slack_us)
        or (rule == 'token' and claimed_us > wait_us + p.slack_us) then
      fired('impossible_duration', 1)
    end
  elseif rule then
    fired('missing_duration', 1)
  end
  local next_play = play_us and math.max(play_us + (claimed_us or 0), now) or now
  local range = p.levels[action_type]
  if range and level and (level < range[1] or level > range[2]) then
    fired('impossible_level', 1)
  end

  local rate = p.rates[action_type]
  local played = claimed_us or since_last
  if rate and played then
    local levels = math.min(p.bonus_levels, math.max(0, (level or 1) - 1))
    local allowed = rate * (1 + p.level_bonus * levels)
    local x = increase / (math.max(played, p.min_duration_us) / 1e6) / allowed
    if x > 1 then
      fired('points_per_second', ac_soft(x))
    end
  end

  local n = tonumber(stats.n) or 0
  -- population: this player's pace over all their play, against the board's players
  local pop = p.population
  local credit = claimed_us or math.min(since_last or 0, pop.max_gap_us)
  local played_us = (tonumber(stats.played_us) or 0) + math.max(credit, p.min_duration_us)
  local pace = nil
  if n + 1 >= pop.min_updates and played_us >= pop.min_play_us then
    pace = (n * (tonumber(stats.mean) or 0) + increase) / (played_us / 60e6)
    local limit = tonumber(redis.call('HGET', sketch_key, 'limit')) or pop.default
    if pace > limit then
      fired('population', ac_soft(pace / limit))
    end
  end

  if n >= p.min_history then
    local mean = tonumber(stats.mean)
    local sd = math.max(math.sqrt(tonumber(stats.m2) / (n - 1)), 0.1 * mean, 1)
    local x = (increase - mean) / sd / p.z_max
    if x > 1 then
      fired('outlier', ac_soft(x))
    end
  end

  local run = 1
  if since_last and sig == stats.sig then
    local previous_run, previous_gap = tonumber(stats.run) or 1, tonumber(stats.gap_us)
    if previous_run < 2 or (previous_gap and math.abs(since_last - previous_gap)
        <= math.max(p.spacing_us, p.spacing_frac * previous_gap)) then
      run = previous_run + 1
    end
  end
  if run >= p.run then
    fired('automation', ac_soft(run / p.run))
  end

  -- devices (a session opened from a registered device): accounts playing from this
  -- device, and devices this account plays from, within the window
  if device then
    local rule, now_ms = p.devices, math.floor(now / 1000)
    local window_ms = math.floor(rule.window_us / 1000)
    local players = ac_window_count(device.players_key, device.user, now_ms, window_ms)
    local devices = ac_window_count(device.devices_key, device.id, now_ms, window_ms)
    if players >= rule.players then
      fired('device_farm', ac_soft(players / rule.players))
    end
    if devices >= rule.devices then
      fired('device_hopping', ac_soft(devices / rule.devices))
    end
  end

  local keep = 1
  for _, check in ipairs(found) do
    keep = keep * (1 - check[2])
  end
  table.sort(found, function(a, b)
    return a[2] > b[2]
  end)
  return 1 - keep, found, { paces = paces, run = run, since_last = since_last,
    play_us = next_play, played_us = played_us, pace = pace }
end

-- 'approved' | 'flagged' | 'rejected' for a judged risk and its reasons.
local function ac_verdict(p, risk, reasons)
  if reasons[1] and risk >= p.reject then
    return 'rejected'
  elseif reasons[1] and risk >= p.flag then
    return 'flagged'
  end
  return 'approved'
end

-- Count the player in the bucket of their pace, and every 16 moves (once enough players
-- are counted) work out the pace above which a player is far out in the upper tail.
local function ac_count(sketch_key, pop, previous, pace)
  local bucket = 'b' .. ac_bucket(pace)
  if bucket == previous then
    return bucket
  end
  if previous then
    redis.call('HINCRBY', sketch_key, previous, -1)
  else
    redis.call('HINCRBY', sketch_key, 'players', 1)
  end
  redis.call('HINCRBY', sketch_key, bucket, 1)
  if redis.call('HINCRBY', sketch_key, 'changes', 1) % 16 ~= 1 then
    return bucket
  end
  local row = redis.call('HGETALL', sketch_key)
  local counts, players = {}, 0
  for i = 1, #row, 2 do
    local index = string.match(row[i], '^b(%d+)$')
    if index then
      counts[tonumber(index)] = tonumber(row[i + 1])
    elseif row[i] == 'players' then
      players = tonumber(row[i + 1])
    end
  end
  if players < pop.min_players then
    redis.call('HDEL', sketch_key, 'limit')
    return bucket
  end
  local indexes = {}
  for index in pairs(counts) do
    indexes[#indexes + 1] = index
  end
  table.sort(indexes, function(a, b)
    return a > b
  end)
  local above, edge = 0, 1.25
  for _, index in ipairs(indexes) do
    above = above + counts[index]
    edge = 1.25 ^ (index + 1)
    if above > (1 - pop.quantile) * players then
      break
    end
  end
  redis.call('HSET', sketch_key, 'limit', string.format('%.3f', pop.factor * edge))
  return bucket
end

-- The history after this submission; `accepted` adds its increase to the pace windows,
-- the play clock, the play credited, the population sketch and the running statistics.
local function ac_remember(stats_key, p, stats, now, increase, accepted, judged, sig, wait_us,
                           sketch_key)
  local fmt = string.format
  local play_us, played_us, n, mean, m2 = stats.play_us or '', stats.played_us or '',
    stats.n or '', stats.mean or '', stats.m2 or ''
  local pop, paces = stats.pop or '', stats.paces
  if accepted then
    local count = (tonumber(n) or 0) + 1
    local average = tonumber(mean) or 0
    local delta = increase - average
    average = average + delta / count
    m2 = fmt('%.17g', (tonumber(m2) or 0) + delta * (increase - average))
    n, mean = count, fmt('%.17g', average)
    play_us, played_us = fmt('%d', judged.play_us), fmt('%d', judged.played_us)
    paces = {}
    for i in ipairs(p.windows) do
      local pace = judged.paces[i]
      local kept = pace[1]
      kept[#kept + 1] = fmt('%d:%d', pace[2], (pace[3] or 0) + increase)
      paces[i] = table.concat(kept, ',')
    end
    if judged.pace then
      pop = ac_count(sketch_key, p.population, stats.pop, judged.pace)
    end
  end
  local text = fmt('%d %s %s %s %s %s %d %d %d %s %s ', now, play_us, played_us, n, mean, m2,
    judged.run, judged.since_last or 0, wait_us, pop, sig)
  if paces[1] then
    text = text .. table.concat(paces, ';') .. ';'
  end
  if stats.fresh then
    -- a history laid out a field per value (before `h`) starts afresh, its fields gone
    redis.call('DEL', stats_key)
  end
  redis.call('HSET', stats_key, 'h', text)
end
