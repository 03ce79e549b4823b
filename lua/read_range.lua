-- read_range.lua: one consistent page of the board, best first.
--
-- Input:
--   KEYS[1]  the board (sorted set)
--   KEYS[2]  the board's players (hash: user id -> '<member>|<updated ms>|<username>')
--   KEYS[3]  the board's update sequence (integer; the version of this view)
--   ARGV[1]  first position, 0-based
--   ARGV[2]  last position, 0-based, inclusive
--
-- Output: { total_players, sequence, user_id, username, score, updated_ms, ... }
--   four fields per entry, ranks ARGV[1]+1 onwards; scores as decimal strings.
--
-- Errors: none.

-- @include board_entries

local board_key, players_key, seq_key = KEYS[1], KEYS[2], KEYS[3]
local entries = board_entries(board_key, players_key, tonumber(ARGV[1]), tonumber(ARGV[2]))
table.insert(entries, 1, tonumber(redis.call('GET', seq_key) or '0'))
table.insert(entries, 1, redis.call('ZCARD', board_key))
return entries
