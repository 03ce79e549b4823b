"""The write-behind syncer: each board's event stream into PostgreSQL (`scoreboard sync`)."""

from scoreboard.sync.fleet import SyncFleet
from scoreboard.sync.syncer import Syncer

__all__ = ["SyncFleet", "Syncer"]
