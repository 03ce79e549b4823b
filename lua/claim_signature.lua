-- claim_signature.lua: a game-server signature on a board that requires one is
-- accepted once. The first claim keeps it for as long as its timestamp could still
-- pass; a second claim of the same signature is a replay.
--
-- Input:
--   KEYS[1]  the signature's key: sb:{board}:sig:<digest> (string)
--   ARGV[1]  how long it is kept, in seconds
--
-- Output:
--   { 'OK', fresh }   fresh: 1 first claim (now kept); 0 claimed before

local S_OK = 'OK'

if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return { S_OK, 1 }
end
return { S_OK, 0 }
