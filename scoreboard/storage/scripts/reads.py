"""Scripts that read a board: pages, neighbourhoods, standings, scans and its build."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from scoreboard.core.values import BoardEntry, member_user
from scoreboard.storage.keys import BoardKeys, RankingKeys
from scoreboard.storage.redis_client import as_text
from scoreboard.storage.scripts import replies
from scoreboard.storage.scripts.transport import ScriptTransport
from scoreboard.storage.statuses import ScriptStatus, refused, status_of


def entries_from_flat(flat: list[Any], first_rank: int) -> list[BoardEntry]:
    """Four fields per entry (id, name, score, updated ms), as the scripts reply."""
    entries = []
    for offset in range(0, len(flat), 4):
        user_id, name, score, updated = (as_text(value) for value in flat[offset : offset + 4])
        entries.append(
            BoardEntry(
                rank=first_rank + offset // 4,
                user_id=user_id,
                username=name,
                score=int(score),
                updated_ms=int(updated) if updated else None,
            )
        )
    return entries


@dataclass(frozen=True)
class BoardCheck:
    """`epoch` of a whole board; else None, with the counts that differed when it
    was found lost (state, players hash, sorted set)."""

    epoch: str | None
    lost_counts: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class ScannedChunk:
    """A chunk of a ranking's players or banned players, read at update sequence `seq`
    (None: the board has no state); `cursor` '0' ends the scan. `ranked` and `entries`
    count the ranking's members and its players entries in the same instant (equal
    unless the ranking was damaged)."""

    cursor: str
    seq: int | None
    values: list[tuple[str, str]]  # (user id, score or banned entry)
    ranked: int = 0
    entries: int = 0


class LiveStanding(NamedTuple):
    """A player on the live board: the score ranked (None: not ranked) and the banned
    entry (None: not banned). A named tuple: a reconcile makes one per player read."""

    score: int | None
    banned: str | None


def _score_text(value: Any) -> int | None:
    text = as_text(value)
    return int(float(text)) if text else None


@dataclass(frozen=True)
class BoardPage:
    total_players: int
    sequence: int
    entries: list[BoardEntry]
    epoch: str = ""


@dataclass(frozen=True)
class PlayerPosition:
    total_players: int
    rank: int
    entries: list[BoardEntry]


class ReadScripts(ScriptTransport):
    async def check_board(self, board: BoardKeys) -> BoardCheck:
        """The board's build, or why it takes no update (a lost board's state is
        deleted by the script)."""
        reply = await self._call("check_board", [board.state, board.players, board.leaderboard], [])
        status = status_of(reply)
        if status is ScriptStatus.OK:
            return BoardCheck(replies.read("check_board", reply).text("epoch"))
        if status is ScriptStatus.BOARD_LOST:
            lost = replies.LOST_BOARD.read(reply)
            counts = (lost.int("counted"), lost.int("hashed"), lost.int("ranked"))
            return BoardCheck(None, counts)
        return BoardCheck(None)

    async def scan_board(
        self,
        board: BoardKeys,
        *,
        banned: bool,
        cursor: str,
        count: int,
        ranking: RankingKeys | None = None,
    ) -> ScannedChunk:
        """A bounded chunk of a ranking's members with their scores (or of its banned
        players with their entries), and the board's update sequence of that instant;
        the all-time ranking unless `ranking` names another."""
        keys = ranking or board.ranking()
        reply = await self._call(
            "scan_board",
            [keys.ranked, keys.players, keys.banned, board.state],
            ["banned" if banned else "players", cursor, count],
        )
        scanned = replies.read("scan_board", reply)
        seq_text, flat = scanned.text("seq"), scanned.raw("values")
        texts = [as_text(value) for value in flat]
        if banned:
            pairs = list(zip(texts[::2], texts[1::2], strict=True))
        else:
            pairs = [
                (member_user(name), score)
                for name, score in zip(texts[::2], texts[1::2], strict=True)
            ]
        return ScannedChunk(
            scanned.text("cursor"),
            int(seq_text) if seq_text else None,
            pairs,
            scanned.int("ranked"),
            scanned.int("entries"),
        )

    async def read_standings(
        self, board: BoardKeys, user_ids: list[str], ranking: RankingKeys | None = None
    ) -> tuple[int | None, dict[str, LiveStanding]]:
        """These players' standings in one ranking (the all-time one unless `ranking`
        names another) in one instant, and the board's update sequence then."""
        keys = ranking or board.ranking()
        reply = await self._call(
            "read_standings",
            [keys.players, keys.ranked, keys.banned, board.state],
            user_ids,
        )
        read = replies.read("read_standings", reply)
        seq_text, flat = read.text("seq"), read.raw("values")
        standings = {
            user_id: LiveStanding(_score_text(flat[2 * i]), as_text(flat[2 * i + 1]) or None)
            for i, user_id in enumerate(user_ids)
        }
        return (int(seq_text) if seq_text else None), standings

    async def read_range(
        self, board: BoardKeys, start: int, stop: int, ranking: tuple[str, str] | None = None
    ) -> BoardPage:
        """A page of the all-time ranking, or of `ranking` (a period's sorted set and
        players hash, `BoardKeys.period_ranking`)."""
        ranked, players = ranking or (board.leaderboard, board.players)
        reply = await self._call("read_range", [ranked, players, board.state], [start, stop])
        if status_of(reply) is not ScriptStatus.OK:
            raise refused("read_range", reply)
        page = replies.read("read_range", reply)
        return BoardPage(
            page.int("total_players"),
            page.int("sequence"),
            entries_from_flat(page.entries, start + 1),
            page.text("epoch"),
        )

    async def read_around(
        self,
        board: BoardKeys,
        user_id: str,
        radius: int,
        ranking: tuple[str, str] | None = None,
    ) -> PlayerPosition:
        ranked, players = ranking or (board.leaderboard, board.players)
        reply = await self._call("read_around", [ranked, players, board.state], [user_id, radius])
        status = status_of(reply)
        if status is ScriptStatus.NOT_RANKED:
            return PlayerPosition(replies.NOT_RANKED.read(reply).int("total_players"), 0, [])
        if status is not ScriptStatus.OK:
            raise refused("read_around", reply)
        around = replies.read("read_around", reply)
        entries = entries_from_flat(around.entries, around.int("first_rank"))
        return PlayerPosition(around.int("total_players"), around.int("rank"), entries)
