-- include/board_change.lua: shared helpers of the scripts that change a board
-- (submit_score, adjust_score, ban_player, unban_player), pasted by the loader after
-- board_entries. Not a command of its own.
--
-- The board's encodings (see scoreboard/board_values.py for the Python side):
--   member   '<15-digit inverted sequence>:<user id>': equal scores sort by who
--            reached them first, and a rank always equals the position in the listing
--   players  hash user id -> '<member>|<updated ms>|<username>' (ranked players only)
--   banned   hash user id -> '<member>|<updated ms>|<username>|<score>', or '-' for a
--            banned player without a score: off the board, score and tie kept
--
-- bc_whole(state_key, players_key, board_key) -> epoch, or nil and the status when
--   the board is not whole ('BOARD_NOT_READY'; 'BOARD_LOST' after deleting the state
--   of a board whose sorted set or players hash went missing)
-- bc_member(seq, user_id) -> the member of an update with this sequence
-- bc_top(board_key, players_key, top_n) -> { {user_id, username, score, updated}, ... }
-- bc_publish(channel, message, top): publishes '<seq> <JSON>' (the sequence first, so
--   a subscriber that already holds a newer state skips the JSON); `message` holds
--   seq, id, board, user_id, username, delta, old_score, new_score, old_rank,
--   new_rank, ts, total, epoch as decimal strings; `top` is added when not nil

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

local function bc_member(seq, user_id)
  return string.format('%015d', 999999999999999 - seq) .. ':' .. user_id
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
  redis.call('PUBLISH', channel, message.seq .. ' ' .. cjson.encode(message))
end
