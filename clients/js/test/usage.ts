// Type-checked, never run (tests/clients/test_js_client.py runs tsc over it): the
// client's declarations hold together and read as a game would use them.
import { ScoreboardClient, ScoreboardError, type LeaderboardUpdate, type ScoreUpdated } from "../index.js";

async function game(): Promise<number> {
  const client = new ScoreboardClient("http://127.0.0.1:8000");
  await client.login("alice", "correct horse", { device: { id: "console-42" } });
  const answer: ScoreUpdated = await client.play(52, { sessionId: "match-17", actionData: { level: 3, time_taken: 41.5 } });
  const top = await client.top10("global", "daily");
  const first: string | undefined = top.leaderboard[0]?.username;
  const feed = client.follow({ onUpdate: (update: LeaderboardUpdate) => console.log(update.total_players, first) });
  feed.close();
  try {
    await client.ban(answer.user_id, "bot");
  } catch (error) {
    if (error instanceof ScoreboardError && error.outcome === "unknown") return -1;
  }
  return answer.new_score;
}

export { game };
