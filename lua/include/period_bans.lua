-- include/period_bans.lua: a ban's and an unban's move in the board's current period
-- rankings, pasted after `periods` by ban_player and unban_player. Not a command of
-- its own.
--
-- A banned player's entry of each current period moves from the period's players hash
-- (and its sorted set) into the period's banned hash, KEYS-of-the-board + ':<period
-- id>' like every period key ('<member>|<updated ms>|<username>|<score>'), which
-- expires with the period; an unban moves it back. Closed periods are read from
-- PostgreSQL, where banned players are left out.
--
-- pb_ban(kinds, now_ms, board_key, players_key, banned_key, user_id)
-- pb_unban(kinds, now_ms, board_key, players_key, banned_key, user_id)
--   kinds: comma-separated period kinds of the board ('' = none)

local function pb_keys(kind, now_ms, board_key, players_key, banned_key)
  local period_id = period_at(kind, now_ms)
  return board_key .. ':' .. period_id, players_key .. ':' .. period_id,
    banned_key .. ':' .. period_id
end

local function pb_ban(kinds, now_ms, board_key, players_key, banned_key, user_id)
  for kind in string.gmatch(kinds, '[^,]+') do
    local ranking, players, banned = pb_keys(kind, now_ms, board_key, players_key, banned_key)
    local entry = redis.call('HGET', players, user_id)
    if entry then
      local member = string.match(entry, '^([^|]+)')
      local score = redis.call('ZSCORE', ranking, member) or '0'
      redis.call('ZREM', ranking, member)
      redis.call('HDEL', players, user_id)
      redis.call('HSET', banned, user_id, entry .. '|' .. score)
      local keep_ms = redis.call('PTTL', players)
      if keep_ms < 0 then
        keep_ms = redis.call('PTTL', ranking)
      end
      if keep_ms > 0 then
        redis.call('PEXPIRE', banned, keep_ms)
      end
    end
  end
end

local function pb_unban(kinds, now_ms, board_key, players_key, banned_key, user_id)
  for kind in string.gmatch(kinds, '[^,]+') do
    local ranking, players, banned = pb_keys(kind, now_ms, board_key, players_key, banned_key)
    local kept = redis.call('HGET', banned, user_id)
    if kept then
      local member, updated, username, score = string.match(kept, '^([^|]+)|([^|]*)|(.*)|(%d+)$')
      redis.call('HDEL', banned, user_id)
      if member and tonumber(score) > 0 then
        redis.call('ZADD', ranking, score, member)
        redis.call('HSET', players, user_id, member .. '|' .. updated .. '|' .. username)
        local keep_ms = redis.call('PTTL', banned)
        if keep_ms > 0 then
          redis.call('PEXPIRE', ranking, keep_ms)
          redis.call('PEXPIRE', players, keep_ms)
        end
      end
    end
  end
end
