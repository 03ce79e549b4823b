-- Accounts, score history, action tokens, audit trail and refresh-token families.
-- Scores are BIGINT (the spec says INTEGER): the board holds exact integers up to
-- 2^53 - 1, which a 32-bit column could not persist.

CREATE TABLE users (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  username VARCHAR(50) UNIQUE NOT NULL,
  -- case-folded username: uniqueness is case-insensitive
  username_key VARCHAR(50) UNIQUE NOT NULL,
  -- stored lower-cased, so uniqueness is case-insensitive
  email VARCHAR(100) UNIQUE NOT NULL,
  password_hash VARCHAR(255) NOT NULL,
  role VARCHAR(16) NOT NULL DEFAULT 'player' CHECK (role IN ('player', 'admin')),
  banned BOOLEAN NOT NULL DEFAULT false,
  current_score BIGINT NOT NULL DEFAULT 0,
  total_score BIGINT NOT NULL DEFAULT 0,
  -- stream id of the last event applied to current_score (scores move forward only)
  last_event_stream_id TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_users_score ON users (current_score DESC);

CREATE TABLE scores (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  -- server-made id of the stream event this row came from: a replay inserts nothing
  event_id UUID UNIQUE NOT NULL,
  stream_id TEXT NOT NULL,
  board VARCHAR(64) NOT NULL DEFAULT 'global',
  user_id UUID NOT NULL REFERENCES users (id),
  score_change BIGINT NOT NULL,
  new_score BIGINT NOT NULL,
  action_type VARCHAR(50) NOT NULL,
  session_id VARCHAR(100),
  action_data JSONB,
  risk_score DOUBLE PRECISION,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  ip_address INET,
  user_agent TEXT
);

CREATE INDEX idx_scores_user_id ON scores (user_id);
CREATE INDEX idx_scores_created_at ON scores (created_at);

CREATE TABLE action_tokens (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  event_id UUID UNIQUE,
  user_id UUID NOT NULL REFERENCES users (id),
  -- SHA-256 of the token; the token itself is never stored
  token_hash VARCHAR(255) UNIQUE NOT NULL,
  board VARCHAR(64) NOT NULL DEFAULT 'global',
  action_type VARCHAR(50) NOT NULL,
  session_id VARCHAR(100),
  max_score_increase INTEGER,
  expires_at TIMESTAMPTZ NOT NULL,
  used_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_action_tokens_expires ON action_tokens (expires_at);

CREATE TABLE audit_log (
  id BIGSERIAL PRIMARY KEY,
  -- set for rows written from the event stream; unique so a replay inserts nothing
  event_id UUID UNIQUE,
  event_type VARCHAR(50) NOT NULL,
  user_id UUID REFERENCES users (id),
  ip_address INET,
  user_agent TEXT,
  score_change BIGINT,
  validation_result VARCHAR(50),
  risk_score DOUBLE PRECISION,
  details JSONB NOT NULL DEFAULT '{}'::jsonb,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_audit_log_user_id ON audit_log (user_id, created_at);
CREATE INDEX idx_audit_log_event_type ON audit_log (event_type, created_at);

-- One row per login: every refresh token descends from it. Reuse of a spent refresh
-- token revokes the whole family.
CREATE TABLE refresh_families (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id UUID NOT NULL REFERENCES users (id),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  -- absolute lifetime: rotation never extends a family past this
  expires_at TIMESTAMPTZ NOT NULL,
  revoked_at TIMESTAMPTZ,
  revoked_reason VARCHAR(32)
);

CREATE INDEX idx_refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
  jti UUID PRIMARY KEY,
  family_id UUID NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
  issued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  used_at TIMESTAMPTZ
);

CREATE INDEX idx_refresh_tokens_family ON refresh_tokens (family_id);
