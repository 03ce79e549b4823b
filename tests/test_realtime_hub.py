"""The fan-out hub without a network: coalescing, shared serialisation, newest-only."""

from __future__ import annotations

import asyncio

from scoreboard.board_feed import BoardEvent
from scoreboard.leaderboard import TopSnapshot
from scoreboard.realtime import Broadcast, Hub, Subscriber
from scoreboard.scripts import BoardEntry


class StubLeaderboard:
    def __init__(self) -> None:
        self.snapshot = TopSnapshot(0, 0, [])

    async def top(self) -> TopSnapshot:
        return self.snapshot


def _event(seq: int, user: str, top: bool = True) -> BoardEvent:
    entries = [BoardEntry(1, user, f"name-{user}", seq * 10, seq)] if top else None
    return BoardEvent(
        seq=seq,
        stream_id=f"{seq}-0",
        user_id=user,
        username=f"name-{user}",
        delta=10,
        old_rank=None,
        new_rank=1,
        new_score=seq * 10,
        ts_ms=seq,
        total_players=1,
        top=entries,
    )


def _hub(interval_ms: int = 100) -> Hub:
    return Hub(StubLeaderboard(), interval_ms)  # type: ignore[arg-type]


async def test_a_quiet_board_sends_at_once_and_a_burst_is_coalesced() -> None:
    hub = _hub(100)
    subscriber, first = await hub.subscribe()
    assert first.data["leaderboard"] == []
    hub.on_event(_event(1, "a"))
    leading = subscriber.pending
    assert leading is not None and leading.data["updated_user"]["user_id"] == "a"
    await subscriber.next(0)
    for seq, user in enumerate("bcdef", start=2):
        hub.on_event(_event(seq, user))
    assert subscriber.pending is None
    trailing = await subscriber.next(1.0)
    assert trailing is not None
    assert [u["user_id"] for u in trailing.data["updated_users"]] == list("bcdef")
    assert trailing.data["updated_user"]["user_id"] == "f"
    assert trailing.data["leaderboard"][0]["user_id"] == "f"
    assert trailing.event_id == "6-0"
    assert hub.sent == 2


async def test_changes_below_the_top_cost_nothing() -> None:
    hub = _hub(0)
    subscriber, _ = await hub.subscribe()
    hub.on_event(_event(1, "a", top=False))
    assert subscriber.pending is None and hub.sent == 0


async def test_every_client_shares_one_serialised_message() -> None:
    hub = _hub(0)
    subscribers = [(await hub.subscribe())[0] for _ in range(50)]
    hub.on_event(_event(1, "a"))
    messages = {id(s.pending) for s in subscribers}
    assert len(messages) == 1
    first = subscribers[0].pending
    assert first is not None and first.ws_text is subscribers[1].pending.ws_text  # type: ignore[union-attr]


async def test_a_slow_client_keeps_only_the_newest_state() -> None:
    subscriber = Subscriber()
    for seq in range(1000):
        subscriber.offer(Broadcast(str(seq), {"n": seq}))
    assert subscriber.skipped == 999
    newest = await subscriber.next(0)
    assert newest is not None and newest.data == {"n": 999}
    assert await subscriber.next(0.01) is None


async def test_resubscription_pushes_the_board_to_everyone() -> None:
    board = StubLeaderboard()
    hub = Hub(board, 100)  # type: ignore[arg-type]
    subscriber, _ = await hub.subscribe()
    board.snapshot = TopSnapshot(7, 1, [BoardEntry(1, "z", "zed", 70, 1)])
    await hub.on_connected()
    pushed = await subscriber.next(0)
    assert pushed is not None and pushed.data["leaderboard"][0]["user_id"] == "z"
    await asyncio.sleep(0)
