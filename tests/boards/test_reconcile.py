"""The reconciler on real Redis and PostgreSQL: it reads a board of any size in short
steps, sees no difference where updates merely went on while it read, and never takes
acknowledged points away because the syncer gave up on their events."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from scoreboard.api.services import Services
from scoreboard.boards import moderation as moderation_module
from scoreboard.boards import reconcile as reconcile_module
from scoreboard.boards.moderation import Meta
from scoreboard.boards.rebuild import rebuild_board, rebuild_lock
from scoreboard.boards.reconcile import ReconcileReport, reconcile
from scoreboard.core.settings import RateRule, Settings
from scoreboard.core.values import member
from scoreboard.storage.keys import BoardKeys, Keys
from scoreboard.storage.scripts import Scripts
from scoreboard.storage.scripts.reads import ScannedChunk
from scoreboard.sync import Syncer
from scoreboard.sync import syncer as syncer_module
from tests.auth_helpers import bearer, error_code, new_player, submit
from tests.conftest import unthrottled
from tests.private_redis import PrivateRedis, private_redis

GENEROUS = RateRule(100_000, 60)

pytestmark = pytest.mark.both_topologies
BIG_BOARD = 200_000


@pytest.fixture
def settings(settings: Settings, own_database: str) -> Settings:
    return unthrottled(
        settings,
        own_database,
        sync_block_ms=100,
        sync_max_attempts=2,
        sync_consumer=f"test-{uuid.uuid4().hex[:6]}",
        anticheat_mode="off",
    )


async def _filled_board(services: Services, players: int) -> BoardKeys:
    """The default board with `players` players (`p1`, `p2`, ...), written into
    PostgreSQL as the syncer would have and rebuilt from there."""
    services.guard.pause()
    await services.pool.execute(
        "WITH players AS (INSERT INTO users (username, username_key, email, password_hash)"
        " SELECT 'p' || g, 'p' || g, 'p' || g || '@example.test', 'x'"
        " FROM generate_series(1, $1::int) g RETURNING id, username)"
        " INSERT INTO board_scores (board, user_id, score, last_event_seq)"
        " SELECT 'global', id, substr(username, 2)::int % 997 + 1, substr(username, 2)::int"
        " FROM players",
        players,
        timeout=120,
    )
    board = services.keys.board()
    async with rebuild_lock(services.redis, board):
        report = await rebuild_board(services.redis, services.pool, services.scripts, board)
    assert report.players == players
    return board


async def _board_scores(services: Services) -> dict[str, int]:
    page = await services.scripts.read_range(services.keys.board(), 0, -1)
    return {entry.user_id: entry.score for entry in page.entries}


class TestABigBoard:
    """Was: `snapshot_board.lua` read the whole board in one call (about 2 s of a
    stalled Redis every minute at a million players, and 503s that had been applied);
    a rebuild's install and a season reset deleted the old board inside a script."""

    @pytest.fixture
    def slow_redis(self, tmp_path: Path) -> Iterator[PrivateRedis]:
        with private_redis(
            tmp_path / "redis", "--slowlog-log-slower-than", "2000", "--slowlog-max-len", "10000"
        ) as server:
            yield server

    @pytest.fixture
    def redis_target(self, slow_redis: PrivateRedis) -> tuple[str, bool]:
        return slow_redis.url, False

    async def test_reconcile_and_repair_never_hold_redis_for_long(
        self, services: Services, slow_redis: PrivateRedis
    ) -> None:
        board = await _filled_board(services, BIG_BOARD)
        with slow_redis.client() as probe:
            probe.slowlog_reset()

        clean = await reconcile(services.redis, services.pool, services.scripts, board)
        assert clean.clean and not clean.repaired and clean.players == BIG_BOARD
        assert clean.scanned >= BIG_BOARD and clean.chunks > BIG_BOARD // 5000

        # one player drifted, one lost: found and repaired
        drifted, lost = await services.pool.fetch(
            "SELECT u.id::text AS id, b.score, b.last_event_seq FROM users u"
            " JOIN board_scores b ON b.user_id = u.id AND b.board = 'global'"
            " WHERE u.username IN ('p10', 'p20') ORDER BY u.username"
        )
        await services.redis.zincrby(
            board.leaderboard, 5, member(drifted["last_event_seq"], drifted["id"])
        )
        await services.redis.zrem(board.leaderboard, member(lost["last_event_seq"], lost["id"]))
        await services.redis.hdel(board.players, lost["id"])
        await services.redis.hincrby(board.state, "players", -1)
        repaired = await reconcile(services.redis, services.pool, services.scripts, board)
        assert repaired.differences == {"ahead": 1, "missing": 1} and repaired.repaired
        assert repaired.rechecked == 2
        again = await reconcile(services.redis, services.pool, services.scripts, board)
        assert again.clean
        ended = await services.scripts.reset_season(
            board,
            stored_season=1,
            event_id=str(uuid.uuid4()),
            admin_id=str(uuid.uuid4()),
            reason="a big board's season ends",
            ip="",
            user_agent="",
        )
        assert ended.players == BIG_BOARD

        with slow_redis.client() as probe:
            entries = probe.slowlog_get(10_000)
        slowest = max(entries, key=lambda entry: entry["duration"], default=None)
        # a chunk measured 1-3 ms here; the old single read took over 400 ms at this size
        assert slowest is None or slowest["duration"] < 20_000, slowest


@pytest.mark.cluster_in_ci
async def test_updates_during_a_chunked_read_are_no_difference(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan takes many small steps while players keep playing: every player read
    is compared at the sequence of its own read, so nothing is reported or repaired."""
    monkeypatch.setattr(reconcile_module, "SCAN_COUNT", 3)
    players = [await new_player(client) for _ in range(30)]
    for index, player in enumerate(players):
        assert (await submit(client, player, 1 + index)).status_code == 200
    await Syncer(services.settings, services.redis, services.pool).run(burst=True)
    board = services.keys.board()

    async def play() -> None:
        for round_ in range(3):
            for player in players:
                assert (await submit(client, player, 1 + round_)).status_code == 200

    playing = asyncio.create_task(play())
    reports = []
    while not playing.done():
        reports.append(await reconcile(services.redis, services.pool, services.scripts, board))
    await playing
    assert reports and all(report.clean and not report.repaired for report in reports)
    assert all(report.players == len(players) for report in reports)


@pytest.mark.cluster_in_ci
async def test_a_stray_member_on_the_ranking_is_found_and_repaired(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was: a ranking member with no players entry behind it (a player's older member
    left beside the current one, or a user the board does not know) showed on the
    board, and the compare, which read the players hash, called the board clean."""
    players = [await new_player(client) for _ in range(3)]
    for index, player in enumerate(players):
        assert (await submit(client, player, 10 * (index + 1))).status_code == 200
    await Syncer(services.settings, services.redis, services.pool).run(burst=True)
    board = services.keys.board()
    ghost, stranger = players[0]["user_id"], str(uuid.uuid4())
    # ties no update has taken: the ghost's older member cannot be its current one
    strays = {member(10_000, ghost): 99, member(10_001, stranger): 98}
    await services.redis.zadd(board.leaderboard, strays)
    shown = [entry.user_id for entry in (await services.scripts.read_range(board, 0, 9)).entries]
    assert shown.count(ghost) == 2 and stranger in shown

    report = await reconcile(services.redis, services.pool, services.scripts, board)
    assert report.differences == {"stray_members": 1} and report.repaired
    assert ("-", 5, 3) in report.examples  # members ranked, players entries
    shown = [entry.user_id for entry in (await services.scripts.read_range(board, 0, 9)).entries]
    assert sorted(shown) == sorted(player["user_id"] for player in players)
    assert (await reconcile(services.redis, services.pool, services.scripts, board)).clean


async def test_a_dead_letter_never_takes_acknowledged_points_away(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was: an update PostgreSQL refused went to the dead letters, and the reconciler
    then 'repaired' the board from PostgreSQL: the player lost the acknowledged points."""
    player = await new_player(client)
    assert (await submit(client, player, 50)).status_code == 200
    syncer = Syncer(services.settings, services.redis, services.pool)
    await syncer.run(burst=True)
    told = await submit(client, player, 50)
    assert told.json()["data"]["new_score"] == 100
    # the applied update's entry made one PostgreSQL refuses (a value out of range)
    events = services.keys.events()
    stream_id, fields = (await services.redis.xrange(events))[-1]
    await services.redis.xdel(events, stream_id)
    await services.redis.xadd(events, {**fields, b"token_max": str(2**64).encode()})
    await syncer.run(burst=True)
    assert len(await services.redis.xrange(services.keys.dead_letters())) == 1

    board = services.keys.board()
    report = await reconcile(services.redis, services.pool, services.scripts, board)
    assert report.clean and not report.repaired and report.dead_letters == 1
    assert (await _board_scores(services))[player["user_id"]] == 100

    # a rebuild keeps them too
    services.guard.pause()
    async with rebuild_lock(services.redis, board):
        await rebuild_board(services.redis, services.pool, services.scripts, board)
    assert (await _board_scores(services))[player["user_id"]] == 100


async def test_a_nul_character_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Was: 200, then PostgreSQL refused the text, the event went to the dead letters
    and the reconciler took the acknowledged points back."""
    player = await new_player(client)
    telemetry = {"level": 2, "time_taken": 6, "note": "a\u0000b"}
    refused = await submit(client, player, 50, action_data=telemetry)
    assert refused.status_code == 400 and error_code(refused) == "INVALID_REQUEST"
    assert "NUL" in refused.json()["error"]["message"]
    assert player["user_id"] not in await _board_scores(services)
    login = await client.post(
        "/v1/auth/login",
        content=b'{"username": "a\\u0000b", "password": "whatever"}',
        headers={"content-type": "application/json"},
    )
    assert login.status_code == 400 and error_code(login) == "INVALID_REQUEST"
    # an escaped backslash before 'u0000' is text, not a NUL
    fine = await client.post(
        "/v1/auth/action-token",
        json={"action_type": "game_completion", "session_id": "a\\u0000b"},
        headers=bearer(player["access_token"]),
    )
    assert fine.status_code == 200, fine.text


async def test_a_ban_during_a_reconcile_goes_through_and_its_repair_keeps_it(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: a reconcile held the rebuild lock for its whole compare (about 16 s at a
    million players), so an admin's ban waited, then failed with 503. Now the compare
    only holds trimming; the repair takes the lock and reads PostgreSQL afresh, so a ban
    that landed meanwhile is installed, not undone by the compare's older snapshot."""
    cheat, drifted = await new_player(client), await new_player(client)
    for player in (cheat, drifted):
        assert (await submit(client, player, 30)).status_code == 200
    await Syncer(services.settings, services.redis, services.pool).run(burst=True)
    board = services.keys.board()
    seq = await services.pool.fetchval(
        "SELECT last_event_seq FROM board_scores WHERE board = 'global' AND user_id = $1::uuid",
        drifted["user_id"],
    )
    await services.redis.zincrby(board.leaderboard, 5, member(seq, drifted["user_id"]))

    compare = reconcile_module._compare
    seen: list[tuple[int, int, int | None]] = []

    async def compare_while_an_admin_bans(*args: object, **kwargs: object) -> None:
        if not seen:
            seen.append(
                (
                    await services.redis.exists(board.rebuild_lock),
                    await services.redis.exists(board.trim_hold),
                    await services.scripts.trim_stream(board, "0-0"),
                )
            )
            meta = Meta(admin_id=str(uuid.uuid4()), ip="", user_agent="test")
            await services.admin.ban(cheat["user_id"], "caught mid-reconcile", meta)
        await compare(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reconcile_module, "_compare", compare_while_an_admin_bans)
    monkeypatch.setattr(moderation_module, "BOARD_RETRIES", 0)  # a held board fails at once
    report = await reconcile(services.redis, services.pool, services.scripts, board)
    assert seen == [(0, 1, None)]  # no rebuild lock; the stream is not trimmed meanwhile
    assert report.repaired and report.differences.get("ahead") == 1
    scores = await _board_scores(services)
    assert cheat["user_id"] not in scores  # the repair kept the ban
    assert scores[drifted["user_id"]] == 30  # and repaired the drift
    assert not await services.redis.exists(board.trim_hold)


async def test_a_hold_outlasts_its_first_lifetime_while_held(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the rebuild lock (and the trim hold) lasted 120 s whatever happened; a
    rebuild or a compare that took longer (a board far past a million players) lost
    its protection. Now it is kept while held, and let go after."""
    from scoreboard.boards import rebuild as rebuild_module
    from scoreboard.boards.rebuild import trim_hold

    monkeypatch.setattr(rebuild_module, "LOCK_MS", 300)
    board = services.keys.board()
    async with (
        trim_hold(services.redis, board) as held,
        rebuild_lock(services.redis, board) as locked,
    ):
        assert held and locked
        await asyncio.sleep(1.0)  # three lifetimes
        assert await services.redis.exists(board.trim_hold, board.rebuild_lock) == 2
        assert 0 < await services.redis.pttl(board.trim_hold) <= 300
    assert await services.redis.exists(board.trim_hold, board.rebuild_lock) == 0


class _ChunkedScripts:
    """A ranking of 30 players read 3 at a time (a real board's hash of this size is
    read in one chunk)."""

    def __init__(self) -> None:
        self.players = [(f"p{index:02d}", str(index)) for index in range(30)]

    async def scan_board(self, board: object, *, banned: bool, cursor: str, **_: object) -> Any:
        if banned:
            return ScannedChunk("0", 7, [])
        start = int(cursor)
        end = start + 3
        return ScannedChunk("0" if end >= 30 else str(end), 7, self.players[start:end])


@pytest.mark.parametrize("pace", [None, 300.0])
async def test_a_paced_scan_reads_no_faster_than_its_pace(
    pace: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the syncer's periodic reconcile read a board as fast as Redis answered (a
    million players in about 17 s of back-to-back chunks that kept Redis busy more
    than half of that time). With a pace it
    waits between chunks until the entries it read are due: 30 entries at 300 a second
    take at least 0.09 s (the last chunk is not waited for), and every player is still
    read."""
    waits: list[float] = []

    async def pause(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    monkeypatch.setattr(reconcile_module, "pause", pause)
    report = ReconcileReport()
    ranking = reconcile_module.Ranking(Keys("t").board().ranking())
    scan = reconcile_module._LiveScan(
        cast(Scripts, _ChunkedScripts()), Keys("t").board(), ranking, report, pace
    )
    started = time.monotonic()
    await scan.read()
    elapsed = time.monotonic() - started
    assert len(scan.seen) == 30 and report.scanned == 30 and report.chunks == 11
    if pace is None:
        assert waits == []
    else:
        assert len(waits) >= 5
        assert elapsed >= 27 / pace


async def test_the_syncers_periodic_reconcile_is_paced(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}

    async def recorded(*args: object, **kwargs: object) -> ReconcileReport:
        seen.update(kwargs)
        return ReconcileReport()

    monkeypatch.setattr(syncer_module, "reconcile", recorded)
    settings = dataclasses.replace(services.settings, reconcile_interval_ms=1)
    syncer = Syncer(settings, services.redis, services.pool)
    await asyncio.sleep(0.01)
    assert await syncer.reconcile_if_due() is not None
    assert seen["pace"] == syncer_module.RECONCILE_SCAN_ENTRIES_PER_SECOND


class _LoopTurns:
    """Counts the event loop's turns while it is entered: a task of its own takes one
    step each time the loop comes round to it."""

    def __init__(self) -> None:
        self.turn = 0
        self._task: asyncio.Task[None] | None = None

    async def _count(self) -> None:
        while True:
            self.turn += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> _LoopTurns:
        self._task = asyncio.create_task(self._count())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()


def _longest_run(turns: list[int]) -> int:
    """The most items worked through at one turn of the event loop."""
    longest = run = 0
    for i, turn in enumerate(turns):
        run = run + 1 if i and turn == turns[i - 1] else 1
        longest = max(longest, run)
    return longest


async def test_a_compare_gives_the_event_loop_turns_while_it_works_through_players(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: reading PostgreSQL's baseline turned every row into a standing, and the
    compare then worked out every player's expected standing, each in one pass without
    an await. At a million players the syncer's event loop stood still for seconds
    (bench.scale: its lag grew by about 10,000 events while one compare ended), and no
    batch was persisted meanwhile. Both passes now give the loop a turn every
    `turns.SLICE` players."""
    from scoreboard.boards import rebuild as rebuild_module
    from scoreboard.core import turns

    players = 3_000
    board = await _filled_board(services, players)

    monkeypatch.setattr(turns, "SLICE", 100)
    loop = _LoopTurns()
    built: list[int] = []  # the loop's turn at each standing built from a row
    expected: list[int] = []  # ... and at each expected standing worked out

    class Counted(rebuild_module.Standing):
        def __init__(self, *args: Any) -> None:
            built.append(loop.turn)
            super().__init__(*args)

    def standing_at(self: Any, *args: Any) -> tuple[int, bool]:
        expected.append(loop.turn)
        return cast(tuple[int, bool], original(self, *args))

    original = rebuild_module.Baseline.standing_at
    monkeypatch.setattr(rebuild_module, "Standing", Counted)
    monkeypatch.setattr(rebuild_module.Baseline, "standing_at", standing_at)

    async with loop:
        report = await reconcile(services.redis, services.pool, services.scripts, board)
    assert report.clean and report.players == players
    assert len(built) == players and len(expected) >= players
    assert _longest_run(built) <= 100 and _longest_run(expected) <= 100


async def test_a_rebuild_gives_the_event_loop_turns_while_it_works_out_the_board(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: a rebuild worked out the expected board (every standing kept or dropped)
    in one pass without an await: the event loop stood still for 0.55 s at a million
    players, in the server's process too, whose guard rebuilds a board Redis lost.
    That pass now gives the loop a turn every `turns.SLICE` players."""
    from scoreboard.boards import rebuild as rebuild_module
    from scoreboard.core import turns

    players = 3_000
    board = await _filled_board(services, players)
    monkeypatch.setattr(turns, "SLICE", 100)
    loop = _LoopTurns()
    working = False
    judged: list[int] = []  # the loop's turn at each standing judged while working

    class Counted(rebuild_module.Standing):
        def __getattribute__(self, name: str) -> Any:
            if name == "score" and working:
                judged.append(loop.turn)
            return super().__getattribute__(name)

    original = rebuild_module.Baseline.expected

    async def expected(self: Any) -> Any:
        nonlocal working
        working = True
        try:
            return await original(self)
        finally:
            working = False

    monkeypatch.setattr(rebuild_module, "Standing", Counted)
    monkeypatch.setattr(rebuild_module.Baseline, "expected", expected)

    async with loop, rebuild_lock(services.redis, board):
        report = await rebuild_board(services.redis, services.pool, services.scripts, board)
    assert report.players == players
    assert len(judged) >= players
    assert _longest_run(judged) <= 100
