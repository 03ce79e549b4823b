// JavaScript client of the scoreboard service, for browsers and Node.js 18+ (fetch).
//
//   import { ScoreboardClient } from "@scoreboard/client";
//   const client = new ScoreboardClient("http://127.0.0.1:8000");
//   await client.login("alice", "correct horse");
//   const answer = await client.play(52, { sessionId: "match-17" });
//
// `login` keeps the tokens; every call refreshes the access token shortly before it
// expires. `play` asks for an action token and spends it on the score update; an update
// whose answer was lost, or refused for now (503, 429), is sent again with the same token
// and body, so it counts once.

const REFRESH_MARGIN_MS = 60_000;
const RETRY_FOR_MS = 60_000;
const RECONNECT_FIRST_MS = 500;
const RECONNECT_MOST_MS = 10_000;

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const backoff = attempt => Math.min(RECONNECT_MOST_MS, RECONNECT_FIRST_MS * 2 ** attempt);
const segment = part => encodeURIComponent(part);

/** An answer in the error envelope. */
export class ScoreboardError extends Error {
  constructor(status, code, message, details) {
    super(`${code}: ${message}`);
    this.name = "ScoreboardError";
    this.status = status;
    this.code = code;
    this.details = details || {};
  }

  /** For a 503: "not_applied" (nothing changed) or "unknown" (it may have been). */
  get outcome() {
    return typeof this.details.outcome === "string" ? this.details.outcome : null;
  }
}

async function read(response) {
  let envelope;
  try {
    envelope = await response.json();
  } catch {
    throw new ScoreboardError(response.status, "INVALID_RESPONSE", response.statusText, {});
  }
  if (envelope.success === true) return envelope.data;
  const error = envelope.error || {};
  const details = {...(error.details || {})};
  const retryAfter = response.headers.get("retry-after");
  if (retryAfter !== null && details.retry_after === undefined) details.retry_after = retryAfter;
  throw new ScoreboardError(response.status, String(error.code || response.status), String(error.message || ""), details);
}

function retryAfterMs(error) {
  const seconds = Number(error.details.retry_after);
  return Number.isFinite(seconds) ? Math.max(100, seconds * 1000) : 1000;
}

function query(params) {
  const entries = Object.entries(params).filter(([, value]) => value !== undefined && value !== null);
  return entries.length ? `?${new URLSearchParams(entries.map(([k, v]) => [k, String(v)]))}` : "";
}

export class ScoreboardClient {
  constructor(baseUrl, {fetch: fetchImpl} = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.fetch = fetchImpl || globalThis.fetch.bind(globalThis);
    this.session = {accessToken: "", refreshToken: "", userId: "", expiresAt: 0};
  }

  // -- plumbing ----------------------------------------------------------------
  async #send(method, path, {body, auth = false, headers = {}} = {}) {
    const sent = {...headers};
    if (auth) {
      if (this.session.refreshToken && Date.now() >= this.session.expiresAt - REFRESH_MARGIN_MS) await this.refresh();
      sent.authorization = `Bearer ${this.session.accessToken}`;
    }
    if (body !== undefined) sent["content-type"] = "application/json";
    const response = await this.fetch(this.baseUrl + path, {method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body)});
    return read(response);
  }

  async #call(method, path, options = {}) {
    try {
      return await this.#send(method, path, options);
    } catch (error) {
      // an access token refused (expired early, clocks apart): refresh once
      if (!(options.auth && error instanceof ScoreboardError && error.status === 401 && this.session.refreshToken)) throw error;
    }
    await this.refresh();
    return this.#send(method, path, options);
  }

  #keep(pair) {
    this.session = {accessToken: pair.access_token, refreshToken: pair.refresh_token, userId: pair.user_id,
      expiresAt: Date.now() + pair.expires_in * 1000};
    return pair;
  }

  // -- accounts ----------------------------------------------------------------
  register(username, email, password) {
    return this.#call("POST", "/v1/auth/register", {body: {username, email, password}});
  }

  async login(username, password, {device} = {}) {
    const body = device === undefined ? {username, password} : {username, password, device};
    return this.#keep(await this.#call("POST", "/v1/auth/login", {body}));
  }

  async refresh() {
    return this.#keep(await this.#send("POST", "/v1/auth/refresh", {body: {refresh_token: this.session.refreshToken}}));
  }

  async logout() {
    await this.#call("POST", "/v1/auth/logout", {auth: true});
    this.session = {accessToken: "", refreshToken: "", userId: "", expiresAt: 0};
  }

  // -- playing -----------------------------------------------------------------
  actionToken(actionType, sessionId, board) {
    const body = {action_type: actionType, session_id: sessionId};
    if (board !== undefined) body.board = board;
    return this.#call("POST", "/v1/auth/action-token", {body, auth: true});
  }

  async submitScore(scoreIncrease, {actionToken, actionType, sessionId, actionData, retryForMs = RETRY_FOR_MS}) {
    const body = {score_increase: scoreIncrease};
    if (actionType !== undefined) body.action_type = actionType;
    if (sessionId !== undefined) body.session_id = sessionId;
    if (actionData !== undefined) body.action_data = actionData;
    const deadline = Date.now() + retryForMs;
    for (let attempt = 0; ; attempt++) {
      let wait;
      try {
        return await this.#call("POST", "/v1/scores/update", {body, auth: true, headers: {"x-action-token": actionToken}});
      } catch (error) {
        const forNow = error instanceof ScoreboardError && (error.status === 503 || error.status === 429);
        const lost = !(error instanceof ScoreboardError);  // no answer: it may have been applied
        if (!(forNow || lost) || Date.now() >= deadline) throw error;
        wait = forNow ? retryAfterMs(error) : backoff(attempt);
      }
      await sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
    }
  }

  async play(scoreIncrease, {sessionId, actionType = "game_completion", board, actionData} = {}) {
    const issued = await this.actionToken(actionType, sessionId, board);
    return this.submitScore(scoreIncrease, {actionToken: issued.action_token, actionType, sessionId, actionData});
  }

  // -- reads -------------------------------------------------------------------
  boards() { return this.#call("GET", "/v1/boards"); }
  top10(board = "global", period = "all") {
    return this.#call("GET", `/v1/boards/${segment(board)}/top10${query({period})}`);
  }
  leaderboard(board = "global", period = "all", {limit = 10, offset = 0} = {}) {
    return this.#call("GET", `/v1/boards/${segment(board)}/leaderboard${query({period, limit, offset})}`);
  }
  around(userId, board = "global", period = "all", {radius = 5} = {}) {
    return this.#call("GET", `/v1/boards/${segment(board)}/around/${segment(userId)}${query({period, radius})}`);
  }
  player(userId, board = "global") {
    return this.#call("GET", `/v1/boards/${segment(board)}/players/${segment(userId)}`);
  }

  // -- admin -------------------------------------------------------------------
  ban(userId, reason) {
    return this.#call("POST", `/v1/admin/players/${segment(userId)}/ban`, {body: {reason}, auth: true});
  }
  unban(userId, reason) {
    return this.#call("POST", `/v1/admin/players/${segment(userId)}/unban`, {body: reason === undefined ? {} : {reason}, auth: true});
  }
  adjust(userId, delta, reason) {
    return this.#call("POST", `/v1/admin/players/${segment(userId)}/adjust`, {body: {delta, reason}, auth: true});
  }
  removeScore(userId, reason) {
    return this.#call("DELETE", `/v1/admin/players/${segment(userId)}/score`, {body: {reason}, auth: true});
  }
  flagged({limit = 50, cursor} = {}) {
    return this.#call("GET", `/v1/admin/flagged${query({limit, cursor})}`, {auth: true});
  }
  history(userId, {limit = 50, cursor} = {}) {
    return this.#call("GET", `/v1/admin/players/${segment(userId)}/history${query({limit, cursor})}`, {auth: true});
  }
  audit({eventType, userId, since, until, limit = 50, cursor} = {}) {
    const params = {event_type: eventType, user_id: userId, since, until, limit, cursor};
    return this.#call("GET", `/v1/admin/audit${query(params)}`, {auth: true});
  }
  createBoard(name, actionTypes, periods) {
    const body = {name, action_types: actionTypes};
    if (periods !== undefined) body.periods = periods;
    return this.#call("POST", "/v1/admin/boards", {body, auth: true});
  }
  resetSeason(board, reason) {
    return this.#call("POST", `/v1/admin/boards/${segment(board)}/reset`, {body: {reason}, auth: true});
  }

  // -- live --------------------------------------------------------------------
  /**
   * Follow a ranking's live feed (server-sent events read with fetch, so it works in
   * browsers and in Node). `onUpdate` gets the whole board first, then each change;
   * a dropped connection is opened again with backoff and the server sends the whole
   * board again, so the caller is in step at once. `onStatus` hears "live" and
   * "reconnecting". Returns `{close()}`.
   */
  follow({board = "global", period = "all", onUpdate, onStatus = () => {}}) {
    const controller = new AbortController();
    let lastId = "";
    const run = async () => {
      for (let attempt = 0; !controller.signal.aborted; attempt++) {
        try {
          const headers = {accept: "text/event-stream"};
          if (lastId) headers["last-event-id"] = lastId;
          const response = await this.fetch(`${this.baseUrl}/sse/leaderboard${query({board, period})}`, {headers, signal: controller.signal});
          if (response.status !== 200) {
            const error = await read(response).catch(e => e);
            if (!(error instanceof ScoreboardError) || ![429, 503].includes(error.status)) { onStatus("closed", error); return; }
          } else {
            onStatus("live");
            for await (const [id, data] of events(response.body)) {
              attempt = 0;
              if (id) lastId = id;
              onUpdate(data);
            }
          }
        } catch (error) {
          if (controller.signal.aborted) return;
        }
        onStatus("reconnecting");
        await sleep(backoff(attempt));
      }
    };
    run();
    return {close: () => controller.abort()};
  }
}

async function* events(body) {
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "", data = [], id = "";
  const reader = body.getReader();  // (async iteration of streams is not in every browser)
  for (;;) {
    const {value: chunk, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(chunk, {stream: true});
    let newline;
    while ((newline = buffer.search(/\r?\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(buffer[newline] === "\r" ? newline + 2 : newline + 1);
      if (line === "") {
        if (data.length && (event === "" || event === "leaderboard_update")) yield [id, JSON.parse(data.join("\n"))];
        event = ""; data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const name = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (name === "event") event = value;
      else if (name === "data") data.push(value);
      else if (name === "id") id = value;
    }
  }
}
