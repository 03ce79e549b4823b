-- snapshot_board.lua: the live board and its stream in one instant, for the
-- reconciler to compare with PostgreSQL (what a MULTI of the same reads did).
--
-- Input:
--   KEYS[1]  the board's event stream
--   KEYS[2]  the board (sorted set; members '<inverted seq>:<user id>')
--   KEYS[3]  the board's banned players (hash)
--   KEYS[4]  the board's state (hash: epoch, seq, players)
--
-- Output:
--   { 'OK', seq ('' = no state), entries (XRANGE of the whole stream),
--     members and scores (flat), banned (flat: user id, value) }

local S_OK = 'OK'

return { S_OK, redis.call('HGET', KEYS[4], 'seq') or '', redis.call('XRANGE', KEYS[1], '-', '+'),
  redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES'), redis.call('HGETALL', KEYS[3]) }
