"""The write-behind syncer: the board's event stream into PostgreSQL (`scoreboard sync`)."""

from scoreboard.sync.syncer import Syncer

__all__ = ["Syncer"]
