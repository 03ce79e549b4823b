"""The fan-out hub without a network: coalescing, shared serialisation, newest-only."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from scoreboard.boards.feed import BoardEvent
from scoreboard.boards.leaderboard import TopSnapshot
from scoreboard.http.ws_protocol import text_frame
from scoreboard.live import hub as realtime
from scoreboard.live.hub import Broadcast, Hub, Subscriber
from scoreboard.storage.scripts import BoardEntry


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
        epoch="e1",
    )


def _hub(interval_ms: int = 100) -> Hub:
    return Hub(StubLeaderboard(), interval_ms)  # type: ignore[arg-type]


async def test_a_quiet_board_sends_at_once_and_a_burst_is_coalesced() -> None:
    hub = _hub(100)
    subscriber, first = await hub.subscribe()
    assert json.loads(first.sse_data)["leaderboard"] == []
    hub.on_event(_event(1, "a"))
    leading = subscriber.pending
    assert leading is not None and json.loads(leading.sse_data)["updated_user"]["user_id"] == "a"
    await subscriber.next(0)
    for seq, user in enumerate("bcdef", start=2):
        hub.on_event(_event(seq, user))
    assert subscriber.pending is None
    trailing = await subscriber.next(1.0)
    assert trailing is not None
    assert [u["user_id"] for u in json.loads(trailing.sse_data)["updated_users"]] == list("bcdef")
    assert json.loads(trailing.sse_data)["updated_user"]["user_id"] == "f"
    assert json.loads(trailing.sse_data)["leaderboard"][0]["user_id"] == "f"
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
    assert pushed is not None and json.loads(pushed.sse_data)["leaderboard"][0]["user_id"] == "z"
    await asyncio.sleep(0)


class Socket:
    """A client's socket as the hub sees it through a shared-frame writer."""

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
    hub = _hub(0)
    socket = Socket()
    mine, _ = await hub.subscribe("session-1")
    other, _ = await hub.subscribe("session-2")
    mine.write_frame = other.write_frame = socket.write
    waiting = asyncio.create_task(mine.next(30))
    await asyncio.sleep(0)
    hub.session_revoked("session-1")
    assert await asyncio.wait_for(waiting, 1) is None
    hub.on_event(_event(1, "a"))
    assert mine.pending is not None and other.pending is None
    assert len(socket.frames) == 1 and hub.written_directly == 1
    hub.unsubscribe(mine)
    hub.unsubscribe(other)
    hub.session_revoked("session-2")  # nobody left to wake
    assert hub.subscriber_count == 0


async def test_broadcasts_to_a_large_audience_are_paced(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(realtime.time, "monotonic", lambda: clock[0])
    hub = _hub(100)

    def slow_write(frame: bytes) -> bool:
        clock[0] += 0.001  # each client takes a millisecond to write to
        return True

    for _ in range(300):
        subscriber, _ = await hub.subscribe()
        subscriber.write_frame = slow_write
    hub.on_event(_event(1, "a"))
    assert hub.sent == 1  # quiet board: at once, and it took 0.3 s
    clock[0] += 0.2  # past the interval, not past the broadcast's own duration
    hub.on_event(_event(2, "b"))
    assert hub.sent == 1
    clock[0] += 0.1
    hub.on_event(_event(3, "c"))
    assert hub.sent == 1  # still coalescing: the trailing edge sends both
    await hub.close()
