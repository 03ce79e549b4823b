-- include/period_bans.lua: a ban's and an unban's move in the board's current period
-- rankings, pasted by ban_player and unban_player. Not a command of its own.
--
-- A banned player's entry of each current period moves from the period's players hash
-- (and its sorted set) into the period's banned hash ('<tie>|<updated ms>|<username>|
-- <score>'), which expires with the period; an unban moves it back. Closed periods are
-- read from PostgreSQL, where banned players are left out.
--
-- pb_ban(keys, first, user_id) / pb_unban(keys, first, user_id): keys[first..] hold
--   three keys per period: its ranking (sorted set), players hash and banned hash

local function pb_ban(keys, first, user_id)
  for i = first, #keys, 3 do
    local ranking, players, banned = keys[i], keys[i + 1], keys[i + 2]
    local entry = redis.call('HGET', players, user_id)
    if entry then
      local member = entry_member(entry, user_id)
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

local function pb_unban(keys, first, user_id)
  for i = first, #keys, 3 do
    local ranking, players, banned = keys[i], keys[i + 1], keys[i + 2]
    local kept = redis.call('HGET', banned, user_id)
    if kept then
      local updated, username, score = string.match(kept, '^[^|]*|([^|]*)|(.*)|(%d+)$')
      redis.call('HDEL', banned, user_id)
      if score and tonumber(score) > 0 then
        local tie = entry_tie(kept)
        redis.call('ZADD', ranking, score, tie_member(tie, user_id))
        redis.call('HSET', players, user_id, tie .. '|' .. updated .. '|' .. username)
        local keep_ms = redis.call('PTTL', banned)
        if keep_ms > 0 then
          redis.call('PEXPIRE', ranking, keep_ms)
          redis.call('PEXPIRE', players, keep_ms)
        end
      end
    end
  end
end
