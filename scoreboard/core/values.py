"""The board's value encodings on the Python side; the scripts' side is
lua/include/board_change.lua, and the two must agree.

    member   '<15-digit inverted sequence>:<user id>'
    players  user id -> '<member>|<updated ms>|<username>'
    banned   user id -> '<member>|<updated ms>|<username>|<score>', or '-' when the
             banned player has no score
"""

from __future__ import annotations

from dataclasses import dataclass

INVERT = 999_999_999_999_999
NO_SCORE = "-"


def member(seq: int, user_id: str) -> str:
    return f"{INVERT - seq:015d}:{user_id}"


def member_user(member_text: str) -> str:
    return member_text.partition(":")[2]


def player_entry(member_text: str, updated_ms: int, username: str) -> str:
    return f"{member_text}|{updated_ms}|{username}"


def banned_entry(member_text: str | None, updated_ms: int, username: str, score: int) -> str:
    if member_text is None or score <= 0:
        return NO_SCORE
    return f"{member_text}|{updated_ms}|{username}|{score}"


@dataclass(frozen=True)
class BannedStanding:
    member: str | None
    score: int


def parse_banned(value: str) -> BannedStanding:
    if value == NO_SCORE:
        return BannedStanding(None, 0)
    member_text, _, rest = value.partition("|")
    return BannedStanding(member_text, int(rest.rpartition("|")[2]))


@dataclass(frozen=True)
class BoardEntry:
    rank: int
    user_id: str
    username: str
    score: int
    updated_ms: int | None
