// The JavaScript client against a real server: CLIENT_TEST_URL names it, and
// CLIENT_TEST_ADMIN / CLIENT_TEST_PASSWORD an admin account on it
// (tests/clients/test_js_client.py starts both and runs `node --test`).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { ScoreboardClient, ScoreboardError } from "../index.js";

const URL = process.env.CLIENT_TEST_URL;
const ADMIN = process.env.CLIENT_TEST_ADMIN;
const PASSWORD = process.env.CLIENT_TEST_PASSWORD;
const name = () => `j${randomUUID().replace(/-/g, "").slice(0, 12)}`;

async function newPlayer(options) {
  const client = new ScoreboardClient(URL, options);
  const username = name();
  await client.register(username, `${username}@example.com`, PASSWORD);
  await client.login(username, PASSWORD);
  return {client, username};
}

test("a player plays, reads and refreshes", async () => {
  const {client, username} = await newPlayer();
  const me = client.session.userId;
  const answer = await client.play(52, {sessionId: "match-1", actionData: {level: 2, time_taken: 30}});
  assert.equal(answer.new_score, 52);
  assert.equal(answer.board, "global");

  const issued = await client.actionToken("game_completion", "match-2");
  const first = await client.submitScore(8, {actionToken: issued.action_token});
  const again = await client.submitScore(8, {actionToken: issued.action_token});
  assert.deepEqual(again, first);
  assert.equal(first.new_score, 60);
  await assert.rejects(client.submitScore(9, {actionToken: issued.action_token}), error => {
    assert.ok(error instanceof ScoreboardError);
    assert.equal(error.code, "INVALID_ACTION_TOKEN");
    assert.equal(error.details.reason, "already_used");
    return true;
  });

  assert.ok((await client.top10()).leaderboard.some(entry => entry.username === username));
  assert.equal((await client.leaderboard("global", "all", {limit: 5})).limit, 5);
  assert.equal((await client.around(me, "global", "all", {radius: 1})).user_id, me);
  assert.equal((await client.player(me)).periods.all.score, 60);
  assert.ok((await client.boards()).some(board => board.name === "global"));

  const old = client.session.refreshToken;
  client.session.expiresAt = 0;  // as if the access token were about to expire
  await client.play(1, {sessionId: "match-3"});
  assert.notEqual(client.session.refreshToken, old);

  await client.logout();
  await assert.rejects(client.refresh(), {code: "INVALID_TOKEN"});
});

test("a lost answer is sent again with the same token and counts once", async () => {
  let updates = 0;
  const losesFirstAnswer = async (url, init) => {
    const response = await fetch(url, init);
    if (String(url).endsWith("/v1/scores/update") && ++updates === 1) {
      await response.text();  // the server applied it; the answer never arrives
      throw new TypeError("fetch failed");
    }
    return response;
  };
  const {client} = await newPlayer({fetch: losesFirstAnswer});
  const answer = await client.play(40, {sessionId: "match-1"});
  assert.equal(updates, 2);
  assert.equal(answer.new_score, 40);
  assert.equal((await client.player(client.session.userId)).periods.all.score, 40);
});

test("the live feed gives the board, then each change", async () => {
  const watcher = new ScoreboardClient(URL);
  const {client, username} = await newPlayer();
  const seen = [];
  let resolve;
  const found = new Promise(r => { resolve = r; });
  const feed = watcher.follow({onUpdate: update => {
    seen.push(update);
    if (update.leaderboard.some(entry => entry.username === username)) resolve();
  }});
  while (seen.length === 0) await new Promise(r => setTimeout(r, 50));
  await client.play(33, {sessionId: "match-1"});
  await found;
  feed.close();
});

test("the live feed reconnects with the last event's id", async () => {
  const sent = [];
  const bodies = [
    'event: leaderboard_update\nid: 1\ndata: {"leaderboard": [], "n": 1}\n\n',
    'event: leaderboard_update\nid: 2\ndata: {"leaderboard": [], "n": 2}\n\n',
  ];
  const fake = async (url, init) => {
    sent.push(init.headers["last-event-id"] ?? null);
    const body = bodies[Math.min(sent.length, bodies.length) - 1];
    return new Response(body, {status: 200, headers: {"content-type": "text/event-stream"}});
  };
  const client = new ScoreboardClient("http://scores.test", {fetch: fake});
  const got = [];
  await new Promise(resolve => {
    const feed = client.follow({onUpdate: update => {
      got.push(update.n);
      if (got.length === 2) { feed.close(); resolve(); }
    }});
  });
  assert.deepEqual(got, [1, 2]);
  assert.deepEqual(sent.slice(0, 2), [null, "1"]);
});

test("an admin runs the admin calls", async () => {
  const admin = new ScoreboardClient(URL);
  await admin.login(ADMIN, PASSWORD);
  const {client: player, username} = await newPlayer();
  const target = player.session.userId;
  const board = `b${randomUUID().replace(/-/g, "").slice(0, 10)}`;
  const created = await admin.createBoard(board, {round: 50}, ["daily"]);
  assert.deepEqual(created.periods.map(p => p.kind), ["daily"]);
  assert.equal((await player.play(20, {sessionId: "s", actionType: "round", board})).board, board);
  assert.equal((await admin.adjust(target, 5, "bonus")).new_score, 5);
  assert.equal((await admin.removeScore(target, "cleanup")).user_id, target);
  assert.equal((await admin.ban(target, "bot")).banned, true);
  await assert.rejects(player.play(1, {sessionId: "s"}), {code: "INVALID_TOKEN"});
  await assert.rejects(new ScoreboardClient(URL).login(username, PASSWORD), {code: "INSUFFICIENT_PERMISSIONS"});
  assert.equal((await admin.unban(target)).banned, false);
  const ended = await admin.resetSeason(board, "new season");
  assert.equal(ended.archive, "season:1");
  for (const page of [await admin.flagged({limit: 5}), await admin.history(target), await admin.audit({eventType: "admin_ban"})]) {
    assert.ok(Array.isArray(page.items));
  }
});

test("a session opened from a device holds tokens only that device can spend", async () => {
  const username = name();
  const phone = new ScoreboardClient(URL);
  await phone.register(username, `${username}@example.com`, PASSWORD);
  await phone.login(username, PASSWORD, {device: {id: `phone-${randomUUID()}`}});
  const tablet = new ScoreboardClient(URL);
  await tablet.login(username, PASSWORD, {device: {id: `tablet-${randomUUID()}`}});
  const issued = await phone.actionToken("game_completion", "match-1");
  await assert.rejects(tablet.submitScore(5, {actionToken: issued.action_token}), error => {
    assert.equal(error.code, "INVALID_ACTION_TOKEN");
    assert.equal(error.details.reason, "device_mismatch");
    return true;
  });
  assert.equal((await phone.play(5, {sessionId: "match-2"})).new_score, 5);
});
