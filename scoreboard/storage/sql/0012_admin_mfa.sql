-- One-time passwords (RFC 6238) of an account: its secret encrypted (AES-GCM, the
-- nonce first), whether the enrolment is confirmed, and the last time step a code was
-- accepted for (a code is accepted once). Recovery codes are kept as SHA-256 digests.
CREATE TABLE user_mfa (
  user_id UUID PRIMARY KEY REFERENCES users (id),
  secret BYTEA NOT NULL,
  enabled_at TIMESTAMPTZ,
  last_step BIGINT NOT NULL DEFAULT 0,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE mfa_recovery_codes (
  user_id UUID NOT NULL REFERENCES users (id),
  code_hash TEXT NOT NULL,
  used_at TIMESTAMPTZ,
  PRIMARY KEY (user_id, code_hash)
);
