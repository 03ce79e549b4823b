"""The shape of each script's reply, by name: the fields after its status, in the order
its header's `Output` lists them (a test reads the headers and holds this table to
them). Wrappers read replies through these names, never by position."""

from __future__ import annotations

from typing import Any

from scoreboard.storage.redis_client import as_text

# a page's entries, repeated to the end of read_range's and read_around's replies
ENTRY_FIELDS = ("user_id", "username", "score", "updated_ms")


class Shape:
    """The named fields of a reply; `entries`: ENTRY_FIELDS repeat after them, to the
    end; `status`: the reply starts with a status."""

    def __init__(
        self, fields: tuple[str, ...], *, entries: bool = False, status: bool = True
    ) -> None:
        self.fields = fields
        self.entries = entries
        self.status = status
        first = 1 if status else 0
        self.index = {name: first + offset for offset, name in enumerate(fields)}
        self.tail = first + len(fields)

    def read(self, reply: list[Any]) -> Reply:
        return Reply(reply, self)


class Reply:
    """A reply read by its shape's names (no copy: the hot path reads a few fields)."""

    __slots__ = ("_at", "_reply", "_shape")

    def __init__(self, reply: list[Any], shape: Shape) -> None:
        self._reply = reply
        self._shape = shape
        self._at = shape.index

    def int(self, name: str) -> int:
        return int(self._reply[self._at[name]])

    def text(self, name: str) -> str:
        return as_text(self._reply[self._at[name]])

    def float(self, name: str) -> float:
        return float(self._reply[self._at[name]])

    def flag(self, name: str) -> bool:
        return bool(int(self._reply[self._at[name]]))

    def raw(self, name: str) -> Any:
        return self._reply[self._at[name]]

    @property
    def entries(self) -> list[Any]:
        """The flat repeated tail (ENTRY_FIELDS each)."""
        return self._reply[self._shape.tail :] if self._shape.entries else []


SHAPES: dict[str, Shape] = {
    "rate_limit": Shape(("admitted", "remaining", "retry_after_us", "reset_us"), status=False),
    "issue_action_token": Shape(("remaining", "reset_us")),
    "submit_score": Shape(
        (
            "new_score",
            "new_rank",
            "old_score",
            "old_rank",
            "stream_id",
            "risk",
            "flagged",
            "rate_remaining",
            "rate_reset_us",
            "total_players",
            "top_json",
            "sequence",
            "epoch",
            "reasons",
            "periods",
        )
    ),
    "judge_submission": Shape(("risk", "reasons", "verdict")),
    "ban_player": Shape(("old_rank", "score", "changed")),
    "unban_player": Shape(("new_rank", "score", "changed")),
    "adjust_score": Shape(("new_score", "new_rank", "old_score", "changed")),
    "record_audit": Shape(("recorded", "attempts")),
    "reset_season": Shape(("ended", "season", "players")),
    "install_board": Shape(("caught_up", "seq")),
    "trim_stream": Shape(("trimmed",)),
    "keep_hold": Shape(("held",)),
    "claim_signature": Shape(("fresh",)),
    "release_hold": Shape(("released",)),
    "check_board": Shape(("epoch",)),
    "scan_board": Shape(("cursor", "seq", "values", "ranked", "entries")),
    "read_standings": Shape(("seq", "values")),
    "read_range": Shape(("total_players", "sequence", "epoch"), entries=True),
    "read_around": Shape(("total_players", "rank", "first_rank"), entries=True),
}


# the other statuses whose replies carry fields
LOST_BOARD = Shape(("counted", "hashed", "ranked"))  # check_board's BOARD_LOST
NOT_RANKED = Shape(("total_players",))  # read_around's NOT_RANKED
PERIOD_MOVED = Shape(("ids",))  # submit_score's: the current periods' ids
# submit_score's REPLAYED: the rate state now, then the first answer (its entries)
REPLAYED = Shape(("rate_remaining", "rate_reset_us"), entries=True)


def read(script: str, reply: list[Any]) -> Reply:
    """`reply` of `script` (an 'OK' one, or rate_limit's), its fields by name."""
    return SHAPES[script].read(reply)
