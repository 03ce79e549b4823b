-- scan_board.lua: one bounded chunk of a ranking's members with their scores (or of
-- its banned players' entries), the board's update sequence at that instant and, of
-- that same instant, how many members the ranking holds and how many players entries
-- it has, for the reconciler. The ranking is the board's all-time one or a current
-- period's: the keys say which (the same encodings for both). A whole ranking is read
-- chunk by chunk through ZSCAN (the banned players through HSCAN), so no call runs
-- long however many players the board holds; a member present for the whole scan is
-- returned at least once (the SCAN family's promise), each time with the sequence of
-- its chunk. The chunk is the scan command's reply as it is: no per-member work here,
-- which keeps a chunk a few tenths of a millisecond of Redis at a million players.
--
-- Input:
--   KEYS[1]  the ranking (sorted set of members '<tie>:<user id>')
--   KEYS[2]  the ranking's players hash (user id -> '<tie>|...')
--   KEYS[3]  the ranking's banned players hash (user id -> the banned entry)
--   KEYS[4]  the board's state (hash: epoch, seq, players)
--   ARGV[1]  'players' (scan the ranking) or 'banned' (scan the banned players)
--   ARGV[2]  the scan's cursor ('0' to start)
--   ARGV[3]  how many elements to ask the scan for (a hint to Redis, not an exact count)
--
-- Output: { 'OK', cursor (the next; '0' when the scan is over), seq ('' = no state),
--           values, ranked, entries }
--   values: 'players': { member, score, ... }, scores as decimal strings;
--           'banned': { user id, entry, ... }, the entries as stored
--   ranked: the ranking's members (ZCARD); entries: its players entries (HLEN). Every
--           script moves a member and its entry together, so the two are equal
--           unless the ranking was damaged.
--
-- Errors: none.

local S_OK = 'OK'

local rcall = redis.call
local ranking_key, players_key, banned_key, state_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local scanned
if ARGV[1] == 'players' then
  scanned = rcall('ZSCAN', ranking_key, ARGV[2], 'COUNT', tonumber(ARGV[3]))
else
  scanned = rcall('HSCAN', banned_key, ARGV[2], 'COUNT', tonumber(ARGV[3]))
end
return {
  S_OK,
  scanned[1],
  rcall('HGET', state_key, 'seq') or '',
  scanned[2],
  rcall('ZCARD', ranking_key),
  rcall('HLEN', players_key),
}
