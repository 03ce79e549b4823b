"""Every Redis key and channel name is built here and nowhere else.

All keys of one board share the hash tag `{board}` so that one script touches one
cluster slot. Subjects that come from clients (usernames, addresses) are hashed, so
no client-chosen text ever lands in a key name.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scoreboard.core import patterns

if TYPE_CHECKING:
    from scoreboard.core.settings import Settings

DEFAULT_BOARD = "global"
BOARD_RE = patterns.matcher(patterns.BOARD_NAME)


def redis_db(url: str | None) -> int:
    """The DB number a redis:// URL selects (0 when it names none)."""
    if not url:
        return 0
    path = urlsplit(url).path.lstrip("/")
    return int(path) if path.isdigit() else 0


@functools.lru_cache(maxsize=65_536)
def subject_digest(subject: str) -> str:
    """A short stable digest of a client-supplied subject, safe inside a key name
    (cached: the same players and addresses come back request after request)."""
    return hashlib.sha256(subject.encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=1024)
def _board_prefix(prefix: str, board: str) -> str:
    if not BOARD_RE.match(board):
        raise ValueError(f"invalid board name {board!r}")
    return f"{prefix}:{{{board}}}"


@dataclass(frozen=True)
class Keys:
    """Key names carry the deployment's prefix. Channel names carry the DB number too:
    Redis pub/sub ignores DB numbers, so two deployments told apart only by their DB
    would otherwise hear each other's boards."""

    prefix: str = "sb"
    db: int = 0

    @classmethod
    def for_settings(cls, settings: Settings) -> Keys:
        return cls(settings.redis_prefix, redis_db(settings.redis_url))

    def _board(self, board: str) -> str:
        return _board_prefix(self.prefix, board)

    def leaderboard(self, board: str = DEFAULT_BOARD) -> str:
        return f"{self._board(board)}:lb"

    def action_token(self, token_hash: str, board: str = DEFAULT_BOARD) -> str:
        return f"{self._board(board)}:tok:{token_hash}"

    def rate_limit(self, rule: str, subject: str, board: str = DEFAULT_BOARD) -> str:
        return f"{self._board(board)}:rl:{rule}:{subject_digest(subject)}"

    def players(self, board: str = DEFAULT_BOARD) -> str:
        """Hash of user id -> '<tie>|<updated ms>|<username>' (scoreboard/core/values.py)."""
        return f"{self._board(board)}:players"

    def events(self, board: str = DEFAULT_BOARD) -> str:
        return f"{self._board(board)}:events"

    def period_ranking(self, board: str, period_id: str) -> tuple[str, str]:
        """The ranking of one period of the board and its players hash (same encodings
        as the all-time ones)."""
        return f"{self.leaderboard(board)}:{period_id}", f"{self.players(board)}:{period_id}"

    def period_banned(self, board: str, period_id: str) -> str:
        """The period entries of the board's banned players, kept for an unban."""
        return f"{self.banned(board)}:{period_id}"

    def period_staging(self, board: str, period_id: str) -> tuple[str, str, str]:
        """Where a rebuild assembles a current period's ranking, players and banned
        players."""
        staged_board, staged_players, staged_banned = self.rebuild_staging(board)
        return (
            f"{staged_board}:{period_id}",
            f"{staged_players}:{period_id}",
            f"{staged_banned}:{period_id}",
        )

    def season(self, board: str = DEFAULT_BOARD) -> str:
        """The all-time ranking's current season number (absent: PostgreSQL's)."""
        return f"{self._board(board)}:season"

    def banned(self, board: str = DEFAULT_BOARD) -> str:
        """Hash of the board's banned players, off the board with their standing kept
        (the encoding: lua/include/board_change.lua)."""
        return f"{self._board(board)}:banned"

    def dead_letters(self, board: str = DEFAULT_BOARD) -> str:
        """Stream of events the syncer gave up on, with the error that stopped them."""
        return f"{self._board(board)}:events:dead"

    def sync_failures(self, board: str = DEFAULT_BOARD) -> str:
        """Hash of stream id -> failed attempts, for events the syncer could not persist."""
        return f"{self._board(board)}:events:failures"

    def sync_health(self, board: str = DEFAULT_BOARD) -> str:
        """The syncer's last health record (JSON, expires when the syncer stops)."""
        return f"{self._board(board)}:sync:health"

    def sync_fleet(self) -> str:
        """The syncer process's own record (JSON, expires when it stops): alive, how
        many boards it follows, and what it waits for."""
        return f"{self.prefix}:sync:fleet"

    def board_state(self, board: str = DEFAULT_BOARD) -> str:
        """Hash {epoch, seq, players}: present while the board may take updates, absent
        when it was lost or is not built yet. `epoch` names this build of the board (a
        rebuild changes it), `seq` counts applied updates (it orders ties and versions
        every view), `players` is how many players the board and its players hash hold,
        so a lost sorted set or hash shows as a count that no longer matches."""
        return f"{self._board(board)}:state"

    def audit_floods(self, window_start_s: int, board: str = DEFAULT_BOARD) -> str:
        """Hash of subject -> refused attempts in the audit window starting then."""
        return f"{self._board(board)}:audit:floods:{window_start_s}"

    def rebuild_lock(self, board: str = DEFAULT_BOARD) -> str:
        return f"{self._board(board)}:rebuild:lock"

    def trim_hold(self, board: str = DEFAULT_BOARD) -> str:
        """Present while a reconcile reads the stream: the syncer trims nothing."""
        return f"{self._board(board)}:trim:hold"

    def rebuild_staging(self, board: str = DEFAULT_BOARD) -> tuple[str, str, str]:
        """Where a rebuild assembles the board, its players and its banned players
        before swapping them in."""
        base = self._board(board)
        return f"{base}:lb:rebuild", f"{base}:players:rebuild", f"{base}:banned:rebuild"

    def user(self, user_id: str, board: str = DEFAULT_BOARD) -> str:
        return f"{self._board(board)}:user:{user_id}"

    def population(self, board: str = DEFAULT_BOARD) -> str:
        """Hash: the board's population sketch of players' paces (lua/include/anticheat.lua)."""
        return f"{self._board(board)}:population"

    def open_tokens(self, user_id: str, board: str = DEFAULT_BOARD) -> str:
        """Sorted set of the player's unspent action tokens: token hash -> expiry ms."""
        return f"{self._board(board)}:open:{user_id}"

    def device_players(self, device: str, board: str = DEFAULT_BOARD) -> str:
        """The accounts playing from a device on the board, within the anti-cheat
        window (sorted set: user id -> last ms; '' names no device, never written)."""
        return f"{self._board(board)}:device:{device}"

    def player_devices(self, user_id: str, board: str = DEFAULT_BOARD) -> str:
        """The devices a player plays from on the board (device id -> last ms)."""
        return f"{self._board(board)}:devices:{user_id}"

    def signature(self, digest: str, board: str = DEFAULT_BOARD) -> str:
        """String: a game-server signature seen on the board (a second use is a replay),
        kept while its timestamp is fresh."""
        return f"{self._board(board)}:sig:{digest}"

    def updates_channel(self, board: str = DEFAULT_BOARD) -> str:
        return f"{self._board(board)}:db{self.db}:updates"

    def auth_rate_limit(self, rule: str, subject: str) -> str:
        """Rate-limit state of the account routes, which belong to no board."""
        return f"{self.prefix}:auth:rl:{rule}:{subject_digest(subject)}"

    def revoked_sessions(self) -> str:
        """Sorted set of revoked login sessions, scored by when their access tokens
        have all expired (ms); every process keeps a copy."""
        return f"{self.prefix}:auth:revoked"

    def revocations_channel(self) -> str:
        return f"{self.prefix}:auth:db{self.db}:revocations"

    def board(self, board: str = DEFAULT_BOARD) -> BoardKeys:
        """Every key of one board, for the script wrappers to build their KEYS from."""
        return _board_keys(self, board)

    def pattern(self) -> str:
        """Glob matching every key of this prefix (tests and maintenance only)."""
        return f"{self.prefix}:*"


@dataclass(frozen=True)
class RankingKeys:
    """One ranking of a board, the all-time one or a period's: its sorted set, its
    players hash and its banned players' kept entries (the same encodings for all)."""

    ranked: str
    players: str
    banned: str


@dataclass(frozen=True)
class BoardKeys:
    """The fixed keys of one board, built once, and its per-player keys on demand."""

    keys: Keys
    name: str

    @functools.cached_property
    def leaderboard(self) -> str:
        return self.keys.leaderboard(self.name)

    @functools.cached_property
    def players(self) -> str:
        return self.keys.players(self.name)

    @functools.cached_property
    def state(self) -> str:
        return self.keys.board_state(self.name)

    @functools.cached_property
    def events(self) -> str:
        return self.keys.events(self.name)

    @functools.cached_property
    def updates_channel(self) -> str:
        return self.keys.updates_channel(self.name)

    @functools.cached_property
    def rebuild_lock(self) -> str:
        return self.keys.rebuild_lock(self.name)

    @functools.cached_property
    def trim_hold(self) -> str:
        return self.keys.trim_hold(self.name)

    @functools.cached_property
    def banned(self) -> str:
        return self.keys.banned(self.name)

    @functools.cached_property
    def rebuild_staging(self) -> tuple[str, str, str]:
        return self.keys.rebuild_staging(self.name)

    @functools.cached_property
    def season(self) -> str:
        return self.keys.season(self.name)

    def action_token(self, token_hash: str) -> str:
        return self.keys.action_token(token_hash, self.name)

    def period_ranking(self, period_id: str) -> tuple[str, str]:
        return self.keys.period_ranking(self.name, period_id)

    def ranking(self, period_id: str | None = None) -> RankingKeys:
        """The all-time ranking's keys, or (with `period_id`) that period's."""
        if period_id is None:
            return RankingKeys(self.leaderboard, self.players, self.banned)
        ranked, players = self.period_ranking(period_id)
        return RankingKeys(ranked, players, self.period_banned(period_id))

    def period_banned(self, period_id: str) -> str:
        return self.keys.period_banned(self.name, period_id)

    def period_staging(self, period_id: str) -> tuple[str, str, str]:
        return self.keys.period_staging(self.name, period_id)

    def audit_floods(self, window_start_s: int) -> str:
        return self.keys.audit_floods(window_start_s, self.name)

    def rate_limit(self, rule: str, subject: str) -> str:
        return self.keys.rate_limit(rule, subject, self.name)

    def user(self, user_id: str) -> str:
        return self.keys.user(user_id, self.name)

    def open_tokens(self, user_id: str) -> str:
        return self.keys.open_tokens(user_id, self.name)

    def signature(self, digest: str) -> str:
        return self.keys.signature(digest, self.name)

    def device_players(self, device: str) -> str:
        return self.keys.device_players(device, self.name)

    def player_devices(self, user_id: str) -> str:
        return self.keys.player_devices(user_id, self.name)

    @functools.cached_property
    def population(self) -> str:
        return self.keys.population(self.name)


@functools.lru_cache(maxsize=1024)
def _board_keys(keys: Keys, board: str) -> BoardKeys:
    return BoardKeys(keys, board)
