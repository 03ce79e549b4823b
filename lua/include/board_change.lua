-- include/board_change.lua: shared helpers of the scripts that change a board
-- (submit_score, adjust_score, ban_player, unban_player), pasted by the loader after
-- clock_and_gcra and board_entries. Not a command of its own.
--
-- The board's encodings (see scoreboard/core/values.py for the Python side):
--   tie      '<15-digit inverted sequence>': equal scores sort by who reached them
--            first, and a rank always equals the position in the listing
--   member   '<tie>:<user id>'
--   players  hash user id -> '<tie>|<updated ms>|<username>' (ranked players only)
--   banned   hash user id -> '<tie>|<updated ms>|<username>|<score>', or '-' for a
--            banned player without a score: off the board, score and tie kept
--   An entry's member is entry_member(entry, user_id) (include/board_entries.lua).
--
-- bc_whole(state_key, players_key, board_key) -> epoch, or nil and the status when
--   the board is not whole ('BOARD_NOT_READY'; 'BOARD_LOST' after deleting the state
--   of a board whose sorted set or players hash went missing)
-- bc_settled(lock_key, state_key, players_key, board_key) -> epoch, or nil and the
--   status: 'REBUILDING' while a rebuild holds the board (an admin's change must wait:
--   the rebuild would install a board staged before it), else as bc_whole
-- bc_tie(seq) -> the tie of an update with this sequence
-- bc_top(board_key, players_key, top_n) -> { {user_id, username, score, updated}, ... }
-- bc_publish(channel, message, top): publishes (SPUBLISH: sharded pub/sub, the board's slot) '<seq> <JSON>' (the sequence first, so
--   a subscriber that already holds a newer state skips the JSON); `message` holds
--   seq, id, board, user_id, username, delta, old_score, new_score, old_rank,
--   new_rank, ts, total, epoch as decimal strings; `top` is added when not nil
-- bc_announce_move(channel, keys, top_n, move): publishes a ban's or unban's move (no
--   change of score) under a new sequence; keys = {board, players, state}, move =
--   {board, epoch, user_id, username, score, old_rank, new_rank} (ranks 0 = none)

local function bc_whole(state_key, players_key, board_key)
  local state = redis.call('HMGET', state_key, 'epoch', 'players')
  if not state[1] then
    return nil, 'BOARD_NOT_READY'
  end
  local players = tonumber(state[2])
  if redis.call('HLEN', players_key) ~= players or redis.call('ZCARD', board_key) ~= players then
    redis.call('DEL', state_key)
    return nil, 'BOARD_LOST'
  end
  return state[1]
end

local function bc_settled(lock_key, state_key, players_key, board_key)
  if redis.call('EXISTS', lock_key) == 1 then
    return nil, 'REBUILDING'
  end
  return bc_whole(state_key, players_key, board_key)
end

local function bc_tie(seq)
  return string.format('%015d', 999999999999999 - seq)
end

local function bc_top(board_key, players_key, top_n)
  local flat = board_entries(board_key, players_key, 0, top_n - 1)
  local top = {}
  for i = 1, #flat, 4 do
    top[#top + 1] = { flat[i], flat[i + 1], flat[i + 2], flat[i + 3] }
  end
  return top
end

local function bc_publish(channel, message, top)
  if top then
    message.top = top
  end
  redis.call('SPUBLISH', channel, message.seq .. ' ' .. cjson.encode(message))
end

local function bc_announce_move(channel, keys, top_n, move)
  local board_key, players_key, state_key = keys[1], keys[2], keys[3]
  local seq = redis.call('HINCRBY', state_key, 'seq', 1)
  local top = nil
  if (move.old_rank > 0 and move.old_rank <= top_n) or (move.new_rank > 0 and move.new_rank <= top_n) then
    top = bc_top(board_key, players_key, top_n)
  end
  bc_publish(channel, { seq = string.format('%d', seq), id = 'seq-' .. seq, board = move.board,
    user_id = move.user_id, username = move.username, delta = '0', old_score = move.score,
    new_score = move.score, old_rank = string.format('%d', move.old_rank),
    new_rank = string.format('%d', move.new_rank),
    ts = string.format('%d', math.floor(redis_now_us() / 1000)),
    total = string.format('%d', redis.call('ZCARD', board_key)), epoch = move.epoch }, top)
end
