-- anticheat.lua: judges one submission against its player's own history, for
-- submit_score.lua, which reads and writes that history in the same atomic step.
--
-- The player's history (hash, one per player and board):
--   last_us  time of the previous submission that reached the judge (accepted or not)
--   recent   points accepted per sixth of the window, '<bucket>:<points>,...'
--   n, mean, m2   count, running mean and sum of squared deviations of the accepted
--                 increases (Welford), for the outlier check
--   sig      the previous submission's request fingerprint (increase and telemetry)
--   gap_us   the time between the previous submission and the one before it
--   run      how many submissions in a row had the same fingerprint, evenly spaced
--   wait_us  how long the previous submission's action token waited before its use
--
-- Thresholds (one JSON object, ARGV of the caller):
--   window_points, window_us   most points accepted in any window
--   slack_us                   leeway on a claimed duration
--   rates {action type: points per second of play}, level_bonus (fraction more per
--   level above 1, for at most bonus_levels levels), min_duration_us (the floor on a
--   plausible duration)
--   min_history, z_max         the outlier check, once the history holds min_history
--   run, spacing_us, spacing_frac   the automation check: `run` identical, evenly
--                              spaced submissions (gaps within the larger tolerance)
--
-- Hard checks (risk 1): points_per_window, impossible_duration. Soft checks
-- (points_per_second, outlier, automation) answer 0.6 at their threshold, rising to
-- 0.7 at twice it: one alone flags, two together reject at the default thresholds.
-- The risk is 1 - prod(1 - r) over every check that fired.

local AC_FIELDS = { 'last_us', 'recent', 'n', 'mean', 'm2', 'sig', 'gap_us', 'run' }

-- The history the judge reads, as a table of its fields (absent ones nil).
local function ac_history(stats_key)
  local row = redis.call('HMGET', stats_key, (unpack or table.unpack)(AC_FIELDS))
  local stats = {}
  for i, name in ipairs(AC_FIELDS) do
    stats[name] = row[i] or nil
  end
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

-- Returns risk, reasons ({ {name, risk}, ... } highest first), then what
-- ac_remember needs: the window's kept buckets, the current bucket, the run length and
-- the time since the previous submission.
local function ac_judge(p, stats, now, increase, action_type, claimed_us, level, sig)
  local last_us = tonumber(stats.last_us)
  local current_bucket = math.floor(now / (p.window_us / 6))
  local recent_points, kept = 0, {}
  for bucket, points in string.gmatch(stats.recent or '', '(%d+):(%d+)') do
    if current_bucket - tonumber(bucket) < 6 then
      recent_points = recent_points + tonumber(points)
      kept[bucket] = tonumber(points)
    end
  end
  local found = {}
  local function fired(name, risk)
    found[#found + 1] = { name, risk }
  end
  local since_last = last_us and (now - last_us) or nil

  if recent_points + increase > p.window_points then
    fired('points_per_window', 1)
  end
  if claimed_us and since_last and claimed_us > since_last + p.slack_us then
    fired('impossible_duration', 1)
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

  local keep = 1
  for _, check in ipairs(found) do
    keep = keep * (1 - check[2])
  end
  table.sort(found, function(a, b)
    return a[2] > b[2]
  end)
  return 1 - keep, found, kept, current_bucket, run, since_last
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

-- The history after this submission; `accepted` adds its increase to the window and
-- to the running statistics.
local function ac_remember(stats_key, stats, now, increase, accepted, kept, bucket, run,
                           since_last, sig, wait_us)
  local fields = { 'last_us', string.format('%d', now), 'sig', sig, 'run', run,
    'gap_us', string.format('%d', since_last or 0), 'wait_us', string.format('%d', wait_us) }
  if accepted then
    local n = (tonumber(stats.n) or 0) + 1
    local mean = tonumber(stats.mean) or 0
    local delta = increase - mean
    mean = mean + delta / n
    local m2 = (tonumber(stats.m2) or 0) + delta * (increase - mean)
    local key = string.format('%d', bucket)
    kept[key] = (kept[key] or 0) + increase
    local buckets = {}
    for b, points in pairs(kept) do
      buckets[#buckets + 1] = b .. ':' .. string.format('%d', points)
    end
    for _, value in ipairs({ 'n', n, 'mean', string.format('%.17g', mean),
        'm2', string.format('%.17g', m2), 'recent', table.concat(buckets, ',') }) do
      fields[#fields + 1] = value
    end
  end
  redis.call('HSET', stats_key, (unpack or table.unpack)(fields))
end
