"""The board's value encodings on the Python side; the scripts' side is
lua/include/board_change.lua and board_entries.lua, and the two must agree.

    tie      '<15-digit inverted sequence>': equal scores sort by who reached them first
    member   '<tie>:<user id>'
    players  user id -> '<tie>|<updated ms>|<username>'
    banned   user id -> '<tie>|<updated ms>|<username>|<score>', or '-' when the
             banned player has no score

An entry names its tie, not its member: the user id is the hash's field already, and
repeating it in every value cost Redis 32 bytes a player. Entries written before held
the whole member in the tie's place; the tie is the entry's first 15 characters
either way, so both forms read the same, and the player's next update (or a rebuild)
writes the shorter one.
"""

from __future__ import annotations

from dataclasses import dataclass

INVERT = 999_999_999_999_999
NO_SCORE = "-"
TIE_DIGITS = 15


def tie(seq: int) -> str:
    return f"{INVERT - seq:0{TIE_DIGITS}d}"


def tie_member(tie_text: str, user_id: str) -> str:
    return f"{tie_text}:{user_id}"


def member(seq: int, user_id: str) -> str:
    return tie_member(tie(seq), user_id)


def member_user(member_text: str) -> str:
    """The user id a member ranks."""
    return member_text[TIE_DIGITS + 1 :]


def entry_member(entry: str, user_id: str) -> str:
    """The member a players or banned entry ranks the user under."""
    return tie_member(entry[:TIE_DIGITS], user_id)


def player_entry(tie_text: str, updated_ms: int, username: str) -> str:
    return f"{tie_text}|{updated_ms}|{username}"


def banned_entry(tie_text: str | None, updated_ms: int, username: str, score: int) -> str:
    if tie_text is None or score <= 0:
        return NO_SCORE
    return f"{tie_text}|{updated_ms}|{username}|{score}"


def banned_score(value: str) -> int:
    """The score a banned entry keeps aside for an unban (0: none)."""
    return 0 if value == NO_SCORE else int(value.rpartition("|")[2])


@dataclass(frozen=True)
class BoardEntry:
    rank: int
    user_id: str
    username: str
    score: int
    updated_ms: int | None
