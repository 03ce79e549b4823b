-- include/board_entries.lua: shared helpers that read a ranking and its entries,
-- pasted by the loader where a script says `-- @include board_entries`. Not a
-- command of its own. The encodings are listed in include/board_change.lua.
--
-- tie_member(tie, user_id) -> the member, '<tie>:<user id>', that ranks the user
--   with this tie
-- entry_tie(entry) -> a players or banned entry's tie: its first 15 characters (an
--   entry written before entries held only the tie holds the whole member there
--   instead, the same tie first, so both forms read the same)
-- entry_member(entry, user_id) -> the member the entry ranks the user under
-- board_entries(board_key, players_key, start, stop) -> flat list
--   { user_id, username, score, updated_ms, ... } for ranks start+1 .. stop+1,
--   scores as exact decimal strings.

local function tie_member(tie, user_id)
  return tie .. ':' .. user_id
end

local function entry_tie(entry)
  return string.sub(entry, 1, 15)
end

local function entry_member(entry, user_id)
  return tie_member(entry_tie(entry), user_id)
end

local function board_entries(board_key, players_key, start, stop)
  local flat = redis.call('ZREVRANGE', board_key, start, stop, 'WITHSCORES')
  if #flat == 0 then
    return {}
  end
  local ids = {}
  for i = 1, #flat, 2 do
    ids[#ids + 1] = string.match(flat[i], ':(.+)$')
  end
  local infos = redis.call('HMGET', players_key, unpack(ids))
  local out = {}
  for i = 1, #ids do
    local updated, name = string.match(infos[i] or '', '^[^|]*|([^|]*)|(.*)$')
    out[#out + 1] = ids[i]
    out[#out + 1] = name or ''
    out[#out + 1] = flat[2 * i]
    out[#out + 1] = updated or ''
  end
  return out
end
