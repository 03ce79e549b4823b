// Types of the JavaScript client. The shapes of requests and answers are in types.d.ts,
// generated from the service's OpenAPI document (clients/generate.py).
import type {
  ActionData, ActionTokenIssued, Around, AuditPage, BanChanged, BoardInfo, Device, LeaderboardUpdate,
  PlayerStandings, RankingPage, Registered, ScoreAdjusted, ScoreRemoved, ScoreUpdated,
  SeasonEnded, TokenPair,
} from "./types.js";

export type * from "./types.js";

export declare class ScoreboardError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown>;
  /** For a 503: "not_applied" (nothing changed) or "unknown" (it may have been). */
  readonly outcome: "not_applied" | "unknown" | null;
}

export interface Session {
  accessToken: string;
  refreshToken: string;
  userId: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

export interface SubmitOptions {
  actionToken: string;
  actionType?: string;
  sessionId?: string;
  actionData?: ActionData;
  /** How long an update whose outcome is unknown is sent again (default 60 000 ms). */
  retryForMs?: number;
}

export interface PlayOptions {
  sessionId: string;
  actionType?: string;
  board?: string;
  actionData?: ActionData;
}

export interface FollowOptions {
  board?: string;
  period?: string;
  onUpdate: (update: LeaderboardUpdate) => void;
  onStatus?: (status: "live" | "reconnecting" | "closed", error?: unknown) => void;
}

export declare class ScoreboardClient {
  constructor(baseUrl: string, options?: { fetch?: typeof fetch });
  readonly baseUrl: string;
  session: Session;

  register(username: string, email: string, password: string): Promise<Registered>;
  /** `device` ({id} or {fingerprint}) opens the session from a registered device:
   * its action tokens are bound to it. */
  login(username: string, password: string, options?: {device?: Device}): Promise<TokenPair>;
  refresh(): Promise<TokenPair>;
  logout(): Promise<void>;

  actionToken(actionType: string, sessionId: string, board?: string): Promise<ActionTokenIssued>;
  submitScore(scoreIncrease: number, options: SubmitOptions): Promise<ScoreUpdated>;
  play(scoreIncrease: number, options: PlayOptions): Promise<ScoreUpdated>;

  boards(): Promise<BoardInfo[]>;
  top10(board?: string, period?: string): Promise<RankingPage>;
  leaderboard(board?: string, period?: string, page?: { limit?: number; offset?: number }): Promise<RankingPage>;
  around(userId: string, board?: string, period?: string, options?: { radius?: number }): Promise<Around>;
  player(userId: string, board?: string): Promise<PlayerStandings>;

  ban(userId: string, reason: string): Promise<BanChanged>;
  unban(userId: string, reason?: string): Promise<BanChanged>;
  adjust(userId: string, delta: number, reason: string): Promise<ScoreAdjusted>;
  removeScore(userId: string, reason: string): Promise<ScoreRemoved>;
  flagged(page?: { limit?: number; cursor?: string }): Promise<AuditPage>;
  history(userId: string, page?: { limit?: number; cursor?: string }): Promise<AuditPage>;
  audit(filters?: {
    eventType?: string; userId?: string; since?: string; until?: string; limit?: number; cursor?: string;
  }): Promise<AuditPage>;
  createBoard(name: string, actionTypes: Record<string, number>, periods?: string[]): Promise<BoardInfo>;
  resetSeason(board: string, reason: string): Promise<SeasonEnded>;

  follow(options: FollowOptions): { close(): void };
}
