-- check_board.lua: the board guard's look at a board, in one atomic step (what a
-- MULTI of the same reads did; a cluster client cannot queue those without threads).
-- A board whose state is missing is not ready; one whose players count no longer
-- matches its sorted set and players hash is lost, and its state is deleted so that
-- no update is applied to what is left.
--
-- Input:
--   KEYS[1]  the board's state (hash: epoch, seq, players)
--   KEYS[2]  the board's players (hash)
--   KEYS[3]  the board (sorted set)
--
-- Output:
--   { 'OK', epoch }
--   { 'BOARD_NOT_READY' }                     no state
--   { 'BOARD_LOST', counted, hashed, ranked }  the counts differed; the state is deleted

local S_OK = 'OK'
local S_BOARD_NOT_READY = 'BOARD_NOT_READY'
local S_BOARD_LOST = 'BOARD_LOST'

local state = redis.call('HMGET', KEYS[1], 'epoch', 'players')
if not state[1] then
  return { S_BOARD_NOT_READY }
end
local counted = tonumber(state[2]) or 0
local hashed, ranked = redis.call('HLEN', KEYS[2]), redis.call('ZCARD', KEYS[3])
if counted ~= hashed or counted ~= ranked then
  redis.call('DEL', KEYS[1])
  return { S_BOARD_LOST, counted, hashed, ranked }
end
return { S_OK, state[1] }
