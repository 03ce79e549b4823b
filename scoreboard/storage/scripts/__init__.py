"""Every Lua script in `lua/`, loaded once and wrapped in a typed async call, by family:
tokens (rate limits, action tokens), scoring (the update, the judge's dry run), board
admin (bans, adjustments, season resets, audit records), reads and rebuild, over one
small transport (`transport.py`).

redis-py's AsyncScript computes the SHA once, calls EVALSHA and reloads the source on
NOSCRIPT, so a `SCRIPT FLUSH` on the server costs one extra round trip and nothing else.
Handlers never see raw replies: each wrapper returns a dataclass or raises the error
that the script's status maps to (`storage/statuses.py`, the one place that maps them).
Every wrapper builds its keys from the board's `BoardKeys`.
"""

from __future__ import annotations

from scoreboard.core.values import BoardEntry
from scoreboard.storage.scripts.board_admin import (
    Adjusted,
    BanChange,
    BoardAdminScripts,
    SeasonEnded,
)
from scoreboard.storage.scripts.reads import (
    BoardCheck,
    BoardPage,
    LiveStanding,
    PlayerPosition,
    ReadScripts,
    ScannedChunk,
    entries_from_flat,
)
from scoreboard.storage.scripts.rebuild import RebuildScripts
from scoreboard.storage.scripts.scoring import (
    Judgement,
    PeriodStanding,
    ScoreApplied,
    ScoreSubmission,
    ScoringPolicy,
    ScoringScripts,
)
from scoreboard.storage.scripts.tokens import TokenScripts
from scoreboard.storage.scripts.transport import (
    IDEMPOTENT,
    READ_ONLY,
    REPLICATED,
    ScriptTransport,
    load_sources,
    lua_dir,
)

__all__ = [
    "IDEMPOTENT",
    "READ_ONLY",
    "REPLICATED",
    "Adjusted",
    "BanChange",
    "BoardCheck",
    "BoardEntry",
    "BoardPage",
    "Judgement",
    "LiveStanding",
    "PeriodStanding",
    "PlayerPosition",
    "ScannedChunk",
    "ScoreApplied",
    "ScoreSubmission",
    "ScoringPolicy",
    "ScriptTransport",
    "Scripts",
    "SeasonEnded",
    "entries_from_flat",
    "load_sources",
    "lua_dir",
]


class Scripts(TokenScripts, ScoringScripts, BoardAdminScripts, ReadScripts, RebuildScripts):
    """Every family's wrappers on one transport: what the rest of the service holds."""
