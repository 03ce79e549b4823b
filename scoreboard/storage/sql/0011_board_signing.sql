-- A board's game-server key: {"algorithm": "hmac-sha256" | "ed25519", "key": ...}.
-- While set, a score update on the board must carry the game server's signature
-- (X-Action-Signature). NULL: updates are not signed. Never returned by the API.
ALTER TABLE boards ADD COLUMN IF NOT EXISTS signing jsonb;
