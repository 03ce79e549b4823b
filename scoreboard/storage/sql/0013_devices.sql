-- Devices players sign in from. A device is named by the client (its own id for the
-- device, or a hash of its fingerprint); `id` is a digest of that name, `label` the
-- name as given. A public key given with the first registration is pinned: a login
-- naming the device with another key is refused. A blocked device signs nobody in.
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('id', 'fingerprint')),
  label TEXT NOT NULL,
  public_key TEXT,
  first_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
  flagged_at TIMESTAMPTZ,
  blocked_at TIMESTAMPTZ,
  blocked_by UUID REFERENCES users (id),
  block_reason TEXT
);
CREATE INDEX devices_flagged ON devices (flagged_at) WHERE flagged_at IS NOT NULL;

-- Which accounts signed in from which device, and when last.
CREATE TABLE device_players (
  device_id TEXT NOT NULL REFERENCES devices (id),
  user_id UUID NOT NULL REFERENCES users (id),
  first_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (device_id, user_id)
);
CREATE INDEX device_players_user ON device_players (user_id, last_seen);

-- The device a session was opened from (none: the login named no device).
ALTER TABLE refresh_families ADD COLUMN device_id TEXT REFERENCES devices (id);
CREATE INDEX refresh_families_device ON refresh_families (device_id)
  WHERE device_id IS NOT NULL AND revoked_at IS NULL;
