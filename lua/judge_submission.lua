-- judge_submission.lua: the anti-cheat judge of submit_score.lua on its own, at a
-- moment the caller names, against one history, applying nothing to any board. It
-- lets a simulation replay hours of play in seconds against the very checks the
-- service runs (the false-positive measurement of the anti-cheat thresholds).
--
-- Input:
--   KEYS[1]  the simulated player's anti-cheat history (hash; fields in
--            include/anticheat.lua)
--   KEYS[2]  the board's population sketch (hash; include/anticheat.lua)
--   ARGV[1]  the moment of the submission, microseconds since the epoch
--   ARGV[2]  anti-cheat thresholds (JSON, the same as submit_score.lua's)
--   ARGV[3]  increase            ARGV[4]  action type
--   ARGV[5]  claimed duration in microseconds, '' = not claimed
--   ARGV[6]  claimed level, '' = not claimed
--   ARGV[7]  the request's fingerprint     ARGV[8]  how long its token waited, us
--
-- Output:
--   { 'OK', risk, reasons, verdict }  verdict: 'approved' | 'flagged' | 'rejected';
--   reasons as submit_score.lua writes them. The history moves on as it would have:
--   a rejected submission adds nothing to the window and the running statistics.

-- @include anticheat

local S_OK = 'OK'

local stats_key = KEYS[1]
local now = tonumber(ARGV[1])
local thresholds = cjson.decode(ARGV[2])
local increase = tonumber(ARGV[3])

local wait_us = tonumber(ARGV[8])
local stats = ac_history(stats_key, thresholds)
local risk, reasons, judged = ac_judge(thresholds, stats, now, increase, ARGV[4],
  tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], wait_us, KEYS[2])
local verdict = ac_verdict(thresholds, risk, reasons)
ac_remember(stats_key, thresholds, stats, now, increase, verdict ~= 'rejected', judged,
  ARGV[7], wait_us, KEYS[2])
return { S_OK, string.format('%.3f', risk), ac_reasons_text(reasons), verdict }
