-- Several boards, their periods and seasons. The `global` board's all-time standings
-- stay in users.current_score (the spec's figure); every other board's are in
-- board_scores. Period totals of every board are in period_scores, the final
-- standings of ended seasons in season_standings. Ties everywhere: the earlier
-- achiever (the lower update sequence) first.

CREATE TABLE boards (
  name VARCHAR(64) PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
  -- action type -> maximum increase; NULL: the server's settings (the global board)
  action_types JSONB,
  periods TEXT[] NOT NULL DEFAULT '{}'
    CHECK (periods <@ ARRAY['daily', 'weekly', 'monthly']::text[]),
  -- the all-time ranking's current season (an admin's reset ends it)
  season INTEGER NOT NULL DEFAULT 1 CHECK (season >= 1),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO boards (name) VALUES ('global');

CREATE TABLE board_scores (
  board VARCHAR(64) NOT NULL REFERENCES boards (name),
  user_id UUID NOT NULL REFERENCES users (id),
  score BIGINT NOT NULL DEFAULT 0,
  last_event_seq BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (board, user_id)
);

CREATE INDEX idx_board_scores_rank ON board_scores (board, score DESC, last_event_seq);

CREATE TABLE period_scores (
  board VARCHAR(64) NOT NULL REFERENCES boards (name),
  period_id VARCHAR(32) NOT NULL,
  user_id UUID NOT NULL REFERENCES users (id),
  score BIGINT NOT NULL DEFAULT 0,
  last_event_seq BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (board, period_id, user_id)
);

CREATE INDEX idx_period_scores_rank
  ON period_scores (board, period_id, score DESC, last_event_seq);

CREATE TABLE season_resets (
  event_id UUID PRIMARY KEY,
  board VARCHAR(64) NOT NULL REFERENCES boards (name),
  season INTEGER NOT NULL,
  admin_id UUID REFERENCES users (id),
  reason TEXT NOT NULL DEFAULT '',
  players INTEGER NOT NULL DEFAULT 0,
  reset_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (board, season)
);

CREATE TABLE season_standings (
  board VARCHAR(64) NOT NULL REFERENCES boards (name),
  season INTEGER NOT NULL,
  user_id UUID NOT NULL REFERENCES users (id),
  score BIGINT NOT NULL,
  last_event_seq BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (board, season, user_id)
);

CREATE INDEX idx_season_standings_rank
  ON season_standings (board, season, score DESC, last_event_seq);

-- the periods each update counted in
ALTER TABLE scores ADD COLUMN periods TEXT[] NOT NULL DEFAULT '{}';
