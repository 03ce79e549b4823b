"""Live feeds without a network: coalescing, shared serialisation, newest-only, pacing,
and what moves a period ranking."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from scoreboard.boards.catalogue import BoardConfig
from scoreboard.boards.feed import BoardEvent
from scoreboard.core.periods import ALL_TIME, Period, period_at
from scoreboard.core.values import BoardEntry
from scoreboard.http.ws_protocol import text_frame
from scoreboard.live import feeds as live_feeds
from scoreboard.live.feeds import LiveFeeds, LiveStats, RankingFeed
from scoreboard.live.messages import Broadcast
from scoreboard.live.subscriber import Subscriber
from scoreboard.storage.scripts.reads import BoardPage

NOW_MS = 1_800_000_000_000


class StubBoards:
    """A board whose ranking is whatever `page` holds."""

    def __init__(self) -> None:
        self.page_now = BoardPage(0, 0, [])
        self.now = NOW_MS

    async def board(self, name: str) -> tuple[BoardConfig, None]:
        return BoardConfig(name, {}, ("daily",), 1), None

    def period(self, config: BoardConfig, kind: str) -> Period | None:
        return None if kind == ALL_TIME else period_at(kind, self.now)

    async def page(self, runtime: None, period: Any, offset: int, limit: int) -> BoardPage:
        return self.page_now

    def now_ms(self) -> int:
        return self.now


class StubChannel:
    def add_listener(self, listener: object) -> None:
        pass

    def remove_listener(self, listener: object) -> None:
        pass


class StubChannels:
    async def hold(self, runtime: object) -> StubChannel:
        return StubChannel()

    def feed(self, name: str) -> StubChannel:
        return StubChannel()

    async def release(self, name: str) -> None:
        pass


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
        epoch="e1",
    )


def _feed(
    interval: float = 0.1, kind: str = ALL_TIME, boards: StubBoards | None = None
) -> RankingFeed:
    return RankingFeed(boards or StubBoards(), "b", kind, interval, LiveStats())  # type: ignore[arg-type]


async def _follow(feed: RankingFeed, session_id: str | None = None) -> tuple[Subscriber, Broadcast]:
    first = await feed.current()
    subscriber = Subscriber(session_id)
    feed.subscribers.add(subscriber)
    return subscriber, first


async def _settle() -> None:
    """Let the feed's task take its look."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_quiet_board_sends_at_once_and_a_burst_is_coalesced() -> None:
    feed = _feed(0.1)
    subscriber, first = await _follow(feed)
    assert json.loads(first.sse_data)["leaderboard"] == []
    feed.on_event(_event(1, "a"))
    await _settle()
    leading = subscriber.pending
    assert leading is not None and json.loads(leading.sse_data)["updated_user"]["user_id"] == "a"
    await subscriber.next(0)
    for seq, user in enumerate("bcdef", start=2):
        feed.on_event(_event(seq, user))
    await _settle()
    assert subscriber.pending is None
    trailing = await subscriber.next(1.0)
    assert trailing is not None
    data = json.loads(trailing.sse_data)
    assert [u["user_id"] for u in data["updated_users"]] == list("bcdef")
    assert data["updated_user"]["user_id"] == "f"
    assert data["leaderboard"][0]["user_id"] == "f"
    assert data["board"] == "b" and data["period"] == "all"
    assert trailing.event_id == "6-0"
    assert feed.reads == 1  # the opening state; the rest came with the events
    await feed.stop()


async def test_changes_below_the_top_cost_nothing() -> None:
    feed = _feed(0)
    subscriber, _ = await _follow(feed)
    feed.on_event(_event(1, "a", top=False))
    await _settle()
    assert subscriber.pending is None and feed.last is not None
    assert feed.reads == 1


async def test_every_client_shares_one_serialised_message() -> None:
    feed = _feed(0)
    subscribers = [(await _follow(feed))[0] for _ in range(50)]
    feed.on_event(_event(1, "a"))
    await _settle()
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


async def test_resubscription_pushes_a_moved_board_to_everyone_and_nothing_else() -> None:
    boards = StubBoards()
    feed = _feed(0.1, boards=boards)
    subscriber, _ = await _follow(feed)
    await feed.on_connected()
    await _settle()
    assert subscriber.pending is None  # nothing moved while away: nothing to send
    boards.page_now = BoardPage(1, 7, [BoardEntry(1, "z", "zed", 70, 1)])
    await asyncio.sleep(0.1)
    await feed.on_connected()
    pushed = await subscriber.next(1)
    assert pushed is not None and json.loads(pushed.sse_data)["leaderboard"][0]["user_id"] == "z"
    await feed.stop()


async def test_a_period_ranking_is_read_when_its_board_moves_and_when_the_period_ends() -> None:
    boards = StubBoards()
    day = period_at("daily", NOW_MS)
    boards.now = day.ends_ms - 100  # a tenth of a second before midnight
    feed = _feed(0, "daily", boards)
    subscriber, first = await _follow(feed)
    assert json.loads(first.sse_data)["period_id"] == day.id
    await asyncio.sleep(0.05)
    assert feed.reads == 1  # nothing moved: nothing read
    assert not feed.wants(1)  # an event of the board: no need to parse it, a read is due
    boards.page_now = BoardPage(1, 1, [BoardEntry(1, "a", "name-a", 5, 1)])
    moved = await subscriber.next(1)
    assert moved is not None and json.loads(moved.sse_data)["leaderboard"][0]["score"] == 5
    assert feed.reads == 2
    boards.now = day.ends_ms + 10
    boards.page_now = BoardPage(0, 2, [])
    midnight = await subscriber.next(1)
    assert midnight is not None
    assert json.loads(midnight.sse_data)["period_id"] == period_at("daily", boards.now).id
    assert json.loads(midnight.sse_data)["leaderboard"] == []
    await feed.stop()


class Socket:
    """A client's socket as a feed sees it through a shared-frame writer."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.full = False

    def write(self, frame: bytes) -> bool:
        if self.full:
            return False
        self.frames.append(frame)
        return True


def _texts(socket: Socket) -> list[str]:
    return [json.loads(_payload(frame))["data"]["n"] for frame in socket.frames]


def _payload(frame: bytes) -> bytes:
    """The payload of one whole text frame, read as a WebSocket client reads it."""
    reader = StreamReader()
    reader.feed_data(frame)
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as done:
        next(parser)
    parsed: Frame = done.value.value
    assert parsed.opcode is Opcode.TEXT and parsed.fin and not reader.buffer
    return bytes(parsed.data)


async def test_a_client_that_keeps_up_is_written_to_directly() -> None:
    socket = Socket()
    subscriber = Subscriber(write_frame=socket.write)
    for n in range(3):
        assert subscriber.offer(Broadcast(str(n), {"n": n}))
    assert subscriber.pending is None
    assert _texts(socket) == [0, 1, 2]
    assert _payload(text_frame(b"x" * 70_000)) == b"x" * 70_000


async def test_a_backed_up_client_waits_for_its_task_and_order_is_kept() -> None:
    socket = Socket()
    subscriber = Subscriber(write_frame=socket.write)
    socket.full = True
    assert not subscriber.offer(Broadcast("1", {"n": 1}))
    socket.full = False
    # an earlier message is waiting: a newer one must not overtake it on the socket
    assert not subscriber.offer(Broadcast("2", {"n": 2}))
    assert socket.frames == [] and subscriber.skipped == 1
    sent: list[Broadcast] = []
    gate = asyncio.Event()

    async def slow_send(message: Broadcast) -> None:
        sent.append(message)
        await gate.wait()

    delivering = asyncio.create_task(subscriber.deliver(slow_send, 1.0))
    await asyncio.sleep(0)
    # while the task is sending, later messages queue behind it
    assert not subscriber.offer(Broadcast("3", {"n": 3}))
    gate.set()
    await delivering
    await subscriber.deliver(slow_send, 0)
    assert [json.loads(m.sse_data)["n"] for m in sent] == [2, 3]
    assert subscriber.offer(Broadcast("4", {"n": 4}))
    assert _texts(socket) == [4]


async def test_a_revoked_session_is_no_longer_written_to_and_its_task_wakes() -> None:
    live = LiveFeeds(StubBoards(), StubChannels(), 0)  # type: ignore[arg-type]
    socket = Socket()
    mine, _ = await live.subscribe("b", "all", "session-1")
    other, _ = await live.subscribe("b", "all", "session-2")
    mine.write_frame = other.write_frame = socket.write
    watched = asyncio.Event()
    unwatch = live.watch_session("session-1", watched.set)
    waiting = asyncio.create_task(mine.next(30))
    await asyncio.sleep(0)
    live.session_revoked("session-1")
    assert await asyncio.wait_for(waiting, 1) is None and watched.is_set()
    feed = live.feed("b", "all")
    assert feed is not None
    feed.on_event(_event(1, "a"))
    await _settle()
    assert mine.pending is not None and other.pending is None
    assert len(socket.frames) == 1 and live.stats.written_directly["b"] == 1
    unwatch()
    live.unsubscribe(mine)
    live.unsubscribe(other)
    live.session_revoked("session-2")  # nobody left to wake
    await _settle()
    assert live.followers() == {}


async def test_broadcasts_to_a_large_audience_are_paced(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(live_feeds.time, "monotonic", lambda: clock[0])
    feed = _feed(0.1)

    def slow_write(frame: bytes) -> bool:
        clock[0] += 0.001  # each client takes a millisecond to write to
        return True

    for _ in range(300):
        subscriber, _ = await _follow(feed)
        subscriber.write_frame = slow_write
    sent = feed._stats.sent
    feed.on_event(_event(1, "a"))
    await _settle()
    assert sent["b"] == 1  # quiet board: at once, and it took 0.3 s
    clock[0] += 0.2  # past the interval, not past the broadcast's own duration
    feed.on_event(_event(2, "b"))
    await _settle()
    assert sent["b"] == 1
    clock[0] += 0.05
    feed.on_event(_event(3, "c"))
    await _settle()
    assert sent["b"] == 1  # still coalescing
    clock[0] += 0.06  # the broadcast's own duration has passed: the trailing edge
    await _settle()
    assert sent["b"] == 2
    assert subscriber.pending is None  # written to every client directly
    await feed.stop()
