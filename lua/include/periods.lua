-- include/periods.lua: the calendar of a board's periods, in UTC, pasted by the loader
-- where a script says `-- @include periods`. Not a command of its own. Its Python twin
-- is scoreboard/periods.py; a test holds the two to the same answers.
--
-- period_at(kind, now_ms) -> id, starts_ms, ends_ms (ends_ms exclusive: the next reset)
--   kind 'daily'   -> 'daily:2026-12-01'
--        'weekly'  -> 'weekly:2026-W49' (ISO week: Monday 00:00 UTC; its Thursday's year)
--        'monthly' -> 'monthly:2026-12'
--   nil for any other kind.
-- Integer arithmetic on doubles, exact for every instant a board can see (ms < 2^53).

local PERIOD_DAY_MS = 86400000

local function period_floor_div(a, b)
  return math.floor(a / b)
end

local function period_days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = period_floor_div(y, 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = period_floor_div(153 * mp + 2, 5) + d - 1
  local doe = yoe * 365 + period_floor_div(yoe, 4) - period_floor_div(yoe, 100) + doy
  return era * 146097 + doe - 719468
end

local function period_civil_from_days(z)
  z = z + 719468
  local era = period_floor_div(z, 146097)
  local doe = z - era * 146097
  local yoe = period_floor_div(doe - period_floor_div(doe, 1460) + period_floor_div(doe, 36524)
    - period_floor_div(doe, 146096), 365)
  local doy = doe - (365 * yoe + period_floor_div(yoe, 4) - period_floor_div(yoe, 100))
  local mp = period_floor_div(5 * doy + 2, 153)
  local d = doy - period_floor_div(153 * mp + 2, 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then
    y = y + 1
  end
  return y, m, d
end

local function period_at(kind, now_ms)
  local day = period_floor_div(now_ms, PERIOD_DAY_MS)
  if kind == 'daily' then
    local y, m, d = period_civil_from_days(day)
    return string.format('daily:%04d-%02d-%02d', y, m, d), day * PERIOD_DAY_MS,
      (day + 1) * PERIOD_DAY_MS
  end
  if kind == 'weekly' then
    local monday = day - (day + 3) % 7
    local thursday = monday + 3
    local y = period_civil_from_days(thursday)
    local week = period_floor_div(thursday - period_days_from_civil(y, 1, 1), 7) + 1
    return string.format('weekly:%04d-W%02d', y, week), monday * PERIOD_DAY_MS,
      (monday + 7) * PERIOD_DAY_MS
  end
  if kind == 'monthly' then
    local y, m = period_civil_from_days(day)
    local first = period_days_from_civil(y, m, 1)
    local ny, nm = y, m + 1
    if nm == 13 then
      ny, nm = y + 1, 1
    end
    return string.format('monthly:%04d-%02d', y, m), first * PERIOD_DAY_MS,
      period_days_from_civil(ny, nm, 1) * PERIOD_DAY_MS
  end
  return nil
end
