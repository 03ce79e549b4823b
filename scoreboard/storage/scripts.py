"""Loads every Lua script in `lua/` once and wraps each in a typed async call.

redis-py's AsyncScript computes the SHA once, calls EVALSHA and reloads the source on
NOSCRIPT, so a `SCRIPT FLUSH` on the server costs one extra round trip and nothing else.
Handlers never see raw replies: each wrapper returns a dataclass or raises the error
that the script's status maps to (`storage/statuses.py`, the one place that maps them).

A script may share helpers with others through `-- @include NAME`, which pastes
`lua/include/NAME.lua` in its place when the script is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from scoreboard.core.anticheat import AnticheatPolicy, Reason, parse_reasons
from scoreboard.core.errors import (
    UNKNOWN,
    ServiceUnavailable,
)
from scoreboard.core.metrics import script_latency
from scoreboard.core.periods import Period, parse_period_id
from scoreboard.core.ratelimit import RateDecision
from scoreboard.core.settings import RateRule
from scoreboard.storage.cluster_pipeline import ClusterPipelines
from scoreboard.storage.keys import BoardKeys
from scoreboard.storage.pipeline import PipelinedConnection
from scoreboard.storage.redis_client import RedisClient, as_text, redis_errors
from scoreboard.storage.statuses import ScriptStatus, refused, status_of

_INCLUDE_RE = re.compile(r"^-- @include ([a-z_]+)$", re.MULTILINE)


def lua_dir() -> Path:
    """`scoreboard/lua` in an installed wheel, the repository's `lua/` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "lua", here.parent.parent / "lua"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the lua/ script directory is missing from this installation")


def load_sources() -> dict[str, str]:
    """Script name -> source with its includes pasted in."""
    root = lua_dir()

    def paste(match: re.Match[str]) -> str:
        return (root / "include" / f"{match[1]}.lua").read_text()

    return {path.stem: _INCLUDE_RE.sub(paste, path.read_text()) for path in root.glob("*.lua")}


@dataclass(frozen=True)
class BoardEntry:
    rank: int
    user_id: str
    username: str
    score: int
    updated_ms: int | None


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
class ScoreSubmission:
    user_id: str
    username: str
    session_id: str | None
    action_type: str | None
    increase: int
    token_hash: str
    claimed_duration_us: int | None
    event_id: str
    ip: str
    user_agent: str
    action_data_json: str  # '' when the action came without telemetry
    fingerprint: str  # digest of the request: the same retry replays the first answer
    claimed_level: int | None = None


@dataclass(frozen=True)
class PeriodStanding:
    """A player's score and rank in the current period of one kind after an update."""

    kind: str
    period_id: str
    score: int
    rank: int
    ends_ms: int


def period_standings(periods_json: str) -> tuple[PeriodStanding, ...]:
    if not periods_json or periods_json in ("[]", "{}"):
        return ()
    return tuple(
        PeriodStanding(str(kind), str(pid), int(score), int(rank), int(ends))
        for kind, pid, score, rank, ends in json.loads(periods_json)
    )


@dataclass(frozen=True)
class ScoreApplied:
    new_score: int
    new_rank: int
    old_score: int
    old_rank: int | None
    stream_id: str
    risk: float
    flagged: bool
    rate: RateDecision
    total_players: int
    top: list[BoardEntry] | None
    sequence: int
    epoch: str
    replayed: bool = False
    reasons: tuple[Reason, ...] = ()
    periods: tuple[PeriodStanding, ...] = ()


@dataclass(frozen=True)
class Judgement:
    """The anti-cheat verdict on one simulated submission."""

    risk: float
    reasons: tuple[Reason, ...]
    verdict: str  # 'approved' | 'flagged' | 'rejected'


@dataclass(frozen=True)
class BanChange:
    """A ban or unban: the rank the player left or took (0: none) and the kept score."""

    rank: int
    score: int
    changed: bool


@dataclass(frozen=True)
class Adjusted:
    new_score: int
    new_rank: int  # 0: off the board
    old_score: int
    changed: bool


@dataclass(frozen=True)
class BoardCheck:
    """`epoch` of a whole board; else None, with the counts that differed when it
    was found lost (state, players hash, sorted set)."""

    epoch: str | None
    lost_counts: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class ScannedChunk:
    """A chunk of a board's players or banned players, read at update sequence `seq`
    (None: the board has no state); `cursor` '0' ends the scan."""

    cursor: str
    seq: int | None
    values: list[tuple[str, str]]  # (user id, score or banned entry)


@dataclass(frozen=True)
class LiveStanding:
    """A player on the live board: the score ranked (None: not ranked) and the banned
    entry (None: not banned)."""

    score: int | None
    banned: str | None


def _score_text(value: Any) -> int | None:
    text = as_text(value)
    return int(float(text)) if text else None


@dataclass(frozen=True)
class SeasonEnded:
    ended: int
    season: int
    players: int


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


@dataclass(frozen=True)
class ScoringPolicy:
    """The tunables `submit_score.lua` receives as ARGV."""

    rate_rule: RateRule
    ceiling: int
    anticheat_mode: str
    anticheat: AnticheatPolicy
    top_n: int
    period_grace_ms: int = 3_600_000
    clock_offset_us: int = 0


# scripts that change nothing, and scripts whose second run of the same call changes
# nothing more (a spent token answers its owner's identical retry with the first answer)
READ_ONLY = frozenset(
    {
        "read_range",
        "read_around",
        "check_board",
        "scan_board",
        "read_standings",
        "judge_submission",
    }
)
IDEMPOTENT = READ_ONLY | {"submit_score", "ban_player", "unban_player", "trim_stream"}
# the writes whose loss would take back what someone was told (a score, a ban, a
# reset): with SCOREBOARD_REDIS_WAIT_REPLICAS they are answered only once replicated.
# Rate-limit state and tokens are not worth the wait (a lost token is asked again).
REPLICATED = frozenset(
    {"submit_score", "adjust_score", "ban_player", "unban_player", "reset_season"}
)


def _check_replicated(wait: tuple[int, int] | None, acked: int | None) -> None:
    """With WAIT asked for, a write fewer replicas acknowledged in time is answered
    503 with an unknown outcome: it is applied on the primary (a failover may still
    lose it), and the client's retry of the same update gets its answer."""
    if wait is not None and acked is not None and acked < wait[0]:
        raise ServiceUnavailable(
            "Redis replicas did not confirm the write in time; retry the same request",
            details={"replicas": acked, "wanted": wait[0]},
            outcome=UNKNOWN,
        )


class Scripts:
    """Every script registered once; one method per script. Calls go through the
    auto-pipelining connection when there is one, else through the general client."""

    def __init__(
        self,
        client: RedisClient,
        pipelined: PipelinedConnection | None = None,
        *,
        routed: ClusterPipelines | None = None,
        wait: tuple[int, int] | None = None,
    ):
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(source) for name, source in load_sources().items()
        }
        self._pipelined = pipelined
        self._routed = routed
        self._wait = wait  # (replicas, timeout ms) every write must reach before its answer

    async def _call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        started = time.perf_counter()
        try:
            return await self._call_once(name, keys, args)
        finally:
            script_latency(name).observe(time.perf_counter() - started)

    async def _call_once(self, name: str, keys: list[str], args: list[Any]) -> Any:
        wait = self._wait if name in REPLICATED else None
        async with redis_errors():
            script = self._scripts[name]
            if self._routed is not None:
                reply, acked = await self._routed.script(
                    script.sha,
                    script.script,
                    keys,
                    args,
                    idempotent=name in IDEMPOTENT,
                    wait=wait,
                )
                _check_replicated(wait, acked)
                return reply
            conn = self._pipelined
            if conn is None:
                return await script(keys=keys, args=args)
            try:
                reply = await conn.execute("EVALSHA", script.sha, len(keys), *keys, *args)
            except NoScriptError:
                await conn.execute("SCRIPT", "LOAD", script.script)
                reply = await conn.execute("EVALSHA", script.sha, len(keys), *keys, *args)
            if wait is not None:  # on the same connection: it covers this write
                _check_replicated(wait, int(await conn.execute("WAIT", *wait)))
            return reply

    async def rate_limit(self, key: str, rule: RateRule) -> RateDecision:
        allowed, remaining, retry_us, reset_us = await self._call(
            "rate_limit", [key], [rule.limit, rule.period_us]
        )
        return RateDecision(
            allowed=bool(allowed),
            limit=rule.limit,
            remaining=int(remaining),
            retry_after=int(retry_us) / 1e6,
            reset_after=int(reset_us) / 1e6,
        )

    async def issue_action_token(
        self,
        board: BoardKeys,
        rule: RateRule,
        *,
        user_id: str,
        token_hash: str,
        session_id: str,
        action_type: str,
        max_increase: int,
        ttl_ms: int,
    ) -> RateDecision:
        reply = await self._call(
            "issue_action_token",
            [
                board.rate_limit("action_token", user_id),
                board.action_token(token_hash),
                board.banned,
            ],
            [rule.limit, rule.period_us, user_id, session_id, action_type, max_increase, ttl_ms],
        )
        if status_of(reply) is not ScriptStatus.OK:
            raise refused("issue_action_token", reply, rule)
        return RateDecision(True, rule.limit, int(reply[1]), 0.0, int(reply[2]) / 1e6)

    async def submit_score(
        self,
        board: BoardKeys,
        submission: ScoreSubmission,
        policy: ScoringPolicy,
        periods: tuple[Period, ...] = (),
    ) -> ScoreApplied:
        """The update, on the board's all-time ranking and on `periods` (the current
        period of each of the board's kinds, as the caller's clock names them). Should
        one have ended by Redis TIME, the script changes nothing and names the current
        ones, and the update is sent again with theirs."""
        reply = await self._submit_score(board, submission, policy, periods)
        if as_text(reply[0]) == ScriptStatus.PERIOD_MOVED:
            ids = as_text(reply[1]).split(",")
            moved = tuple(
                parse_period_id(period_id) or dataclasses.replace(period, id=period_id)
                for period, period_id in zip(periods, ids, strict=True)
            )
            reply = await self._submit_score(board, submission, policy, moved)
        status = as_text(reply[0])
        if status == ScriptStatus.REPLAYED:
            rate = RateDecision(
                True, policy.rate_rule.limit, int(reply[1]), 0.0, int(reply[2]) / 1e6
            )
            return _replayed(reply[3:], policy.rate_rule, rate)
        if status != ScriptStatus.OK:
            raise refused("submit_score", reply, policy.rate_rule)
        return _applied(reply, policy.rate_rule)

    async def _submit_score(
        self,
        board: BoardKeys,
        submission: ScoreSubmission,
        policy: ScoringPolicy,
        periods: tuple[Period, ...],
    ) -> Any:
        user_id = submission.user_id
        period_keys = [key for period in periods for key in board.period_ranking(period.id)]
        return await self._call(
            "submit_score",
            [
                board.rate_limit("score_update", user_id),
                board.action_token(submission.token_hash),
                board.leaderboard,
                board.players,
                board.user(user_id),
                board.state,
                board.events,
                board.updates_channel,
                board.banned,
                *period_keys,
            ],
            [
                user_id,
                submission.username,
                submission.session_id or "",
                submission.action_type or "",
                submission.increase,
                policy.rate_rule.limit,
                policy.rate_rule.period_us,
                policy.ceiling,
                policy.anticheat_mode,
                policy.anticheat.as_json,
                "" if submission.claimed_duration_us is None else submission.claimed_duration_us,
                "" if submission.claimed_level is None else submission.claimed_level,
                policy.top_n,
                submission.event_id,
                submission.token_hash,
                board.name,
                submission.ip,
                submission.user_agent,
                submission.action_data_json,
                submission.fingerprint,
                ",".join(period.kind for period in periods),
                policy.period_grace_ms,
                policy.clock_offset_us,
                ",".join(f"{p.id}|{p.starts_ms}|{p.ends_ms}" for p in periods),
            ],
        )

    async def judge_submission(
        self,
        board: BoardKeys,
        policy: AnticheatPolicy,
        *,
        user_id: str,
        now_us: int,
        increase: int,
        action_type: str,
        claimed_duration_us: int | None,
        claimed_level: int | None,
        fingerprint: str,
        token_wait_us: int,
    ) -> Judgement:
        """The anti-cheat judge alone, at a given moment, on the player's history."""
        reply = await self._call(
            "judge_submission",
            [board.user(user_id)],
            [
                now_us,
                policy.as_json,
                increase,
                action_type,
                "" if claimed_duration_us is None else claimed_duration_us,
                "" if claimed_level is None else claimed_level,
                fingerprint,
                token_wait_us,
            ],
        )
        return Judgement(
            float(reply[1]), tuple(parse_reasons(as_text(reply[2]))), as_text(reply[3])
        )

    async def _ban_script(
        self,
        name: str,
        board: BoardKeys,
        user_id: str,
        top_n: int,
        period_ids: tuple[str, ...],
    ) -> BanChange:
        period_keys = [
            key
            for period_id in period_ids
            for key in (*board.period_ranking(period_id), board.period_banned(period_id))
        ]
        reply = await self._call(
            name,
            [
                board.leaderboard,
                board.players,
                board.banned,
                board.state,
                board.updates_channel,
                board.rebuild_lock,
                *period_keys,
            ],
            [user_id, top_n, board.name],
        )
        if status_of(reply) is not ScriptStatus.OK:
            raise refused(name, reply)
        return BanChange(int(reply[1]), int(reply[2]), bool(int(reply[3])))

    async def ban_player(
        self,
        board: BoardKeys,
        user_id: str,
        top_n: int,
        period_ids: tuple[str, ...] = (),
    ) -> BanChange:
        """Off the board and its current periods (`period_ids`), standing kept; no
        tokens or updates until unbanned."""
        return await self._ban_script("ban_player", board, user_id, top_n, period_ids)

    async def unban_player(
        self,
        board: BoardKeys,
        user_id: str,
        top_n: int,
        period_ids: tuple[str, ...] = (),
    ) -> BanChange:
        """Back on the board (and its current periods) with the kept score and tie
        position."""
        return await self._ban_script("unban_player", board, user_id, top_n, period_ids)

    async def adjust_score(
        self,
        board: BoardKeys,
        *,
        user_id: str,
        username: str,
        delta: int | None,
        ceiling: int,
        top_n: int,
        event_id: str,
        admin_id: str,
        reason: str,
    ) -> Adjusted:
        """An admin's change of a score; delta None removes the player's score."""
        reply = await self._call(
            "adjust_score",
            [
                board.leaderboard,
                board.players,
                board.banned,
                board.state,
                board.events,
                board.updates_channel,
            ],
            [
                user_id,
                username,
                "remove" if delta is None else "adjust",
                delta or 0,
                ceiling,
                top_n,
                event_id,
                board.name,
                admin_id,
                reason,
            ],
        )
        if status_of(reply) is not ScriptStatus.OK:
            raise refused("adjust_score", reply)
        return Adjusted(int(reply[1]), int(reply[2]), int(reply[3]), bool(int(reply[4])))

    async def record_audit(
        self,
        board: BoardKeys,
        *,
        window_start_s: int,
        subject: str,
        sample: int,
        ttl_ms: int,
        event_id: str,
        event_type: str,
        user_id: str | None,
        ip: str,
        user_agent: str,
        result: str,
        details_json: str,
    ) -> bool:
        """Append a security event; False when it was only counted (a flood)."""
        reply = await self._call(
            "record_audit",
            [board.events, board.audit_floods(window_start_s)],
            [
                subject,
                sample,
                ttl_ms,
                event_id,
                board.name,
                event_type,
                user_id or "",
                ip,
                user_agent,
                result,
                details_json,
            ],
        )
        return bool(int(reply[1]))

    async def install_board(
        self,
        board: BoardKeys,
        max_seq: int,
        last_stream_id: str,
        epoch: str,
        periods: list[tuple[str, int]] | None = None,
    ) -> tuple[int, int]:
        """Swap a staged board (and its current periods' rankings: (period id, ms its
        keys stay)) into place; returns (events caught up, board sequence)."""
        periods = periods or []
        period_keys = [
            key
            for period_id, _ in periods
            for key in (
                *board.period_staging(period_id),
                *board.period_ranking(period_id),
                board.period_banned(period_id),
            )
        ]
        reply = await self._call(
            "install_board",
            [
                *board.rebuild_staging,
                board.leaderboard,
                board.players,
                board.banned,
                board.state,
                board.events,
                board.updates_channel,
                *period_keys,
            ],
            [
                max_seq,
                last_stream_id,
                epoch,
                ",".join(period_id for period_id, _ in periods),
                ",".join(str(max(1, keep_ms)) for _, keep_ms in periods),
            ],
        )
        return int(reply[1]), int(reply[2])

    async def reset_season(
        self,
        board: BoardKeys,
        *,
        stored_season: int,
        event_id: str,
        admin_id: str,
        reason: str,
        ip: str,
        user_agent: str,
    ) -> SeasonEnded:
        """End the all-time ranking's season: emptied, the number up, a reset in the
        stream for the syncer to archive."""
        reply = await self._call(
            "reset_season",
            [
                board.leaderboard,
                board.players,
                board.banned,
                board.state,
                board.events,
                board.updates_channel,
                board.season,
                board.rebuild_lock,
            ],
            [stored_season, event_id, board.name, admin_id, reason, ip, user_agent],
        )
        if status_of(reply) is not ScriptStatus.OK:
            raise refused("reset_season", reply)
        return SeasonEnded(int(reply[1]), int(reply[2]), int(reply[3]))

    async def check_board(self, board: BoardKeys) -> BoardCheck:
        """The board's build, or why it takes no update (a lost board's state is
        deleted by the script)."""
        reply = await self._call("check_board", [board.state, board.players, board.leaderboard], [])
        status = as_text(reply[0])
        if status == ScriptStatus.OK:
            return BoardCheck(as_text(reply[1]))
        if status == ScriptStatus.BOARD_LOST:
            return BoardCheck(None, (int(reply[1]), int(reply[2]), int(reply[3])))
        return BoardCheck(None)

    async def scan_board(
        self, board: BoardKeys, *, banned: bool, cursor: str, count: int
    ) -> ScannedChunk:
        """A bounded chunk of the board's players with their scores (or of its banned
        players with their entries), and the update sequence of that instant."""
        hashed = board.banned if banned else board.players
        reply = await self._call(
            "scan_board",
            [hashed, board.leaderboard, board.state],
            ["banned" if banned else "players", cursor, count],
        )
        seq_text, flat = as_text(reply[2]), reply[3]
        return ScannedChunk(
            as_text(reply[1]),
            int(seq_text) if seq_text else None,
            [(as_text(flat[i]), as_text(flat[i + 1])) for i in range(0, len(flat), 2)],
        )

    async def read_standings(
        self, board: BoardKeys, user_ids: list[str]
    ) -> tuple[int | None, dict[str, LiveStanding]]:
        """These players' standings in one instant, and the update sequence then."""
        reply = await self._call(
            "read_standings",
            [board.players, board.leaderboard, board.banned, board.state],
            user_ids,
        )
        seq_text, flat = as_text(reply[1]), reply[2]
        standings = {
            user_id: LiveStanding(_score_text(flat[2 * i]), as_text(flat[2 * i + 1]) or None)
            for i, user_id in enumerate(user_ids)
        }
        return (int(seq_text) if seq_text else None), standings

    async def trim_stream(self, board: BoardKeys, min_id: str) -> int | None:
        """Trim what the syncer persisted; None while a rebuild holds the stream."""
        reply = await self._call("trim_stream", [board.events, board.rebuild_lock], [min_id])
        if as_text(reply[0]) == ScriptStatus.REBUILDING:
            return None
        return int(reply[1])

    async def read_range(
        self, board: BoardKeys, start: int, stop: int, ranking: tuple[str, str] | None = None
    ) -> BoardPage:
        """A page of the all-time ranking, or of `ranking` (a period's sorted set and
        players hash, `BoardKeys.period_ranking`)."""
        ranked, players = ranking or (board.leaderboard, board.players)
        reply = await self._call("read_range", [ranked, players, board.state], [start, stop])
        if status_of(reply) is not ScriptStatus.OK:
            raise refused("read_range", reply)
        return BoardPage(
            int(reply[1]), int(reply[2]), entries_from_flat(reply[4:], start + 1), as_text(reply[3])
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
            return PlayerPosition(int(reply[1]), 0, [])
        if status is not ScriptStatus.OK:
            raise refused("read_around", reply)
        first_rank = int(reply[3])
        return PlayerPosition(
            int(reply[1]), int(reply[2]), entries_from_flat(reply[4:], first_rank)
        )


def _replayed(answer: list[Any], rule: RateRule, rate: RateDecision) -> ScoreApplied:
    """The first answer to a spent token, given again to its owner's identical retry."""
    if status_of(answer) is not ScriptStatus.OK:
        raise refused("submit_score", answer, rule)
    new_score, new_rank, old_score, old_rank = (int(as_text(v)) for v in answer[1:5])
    periods = period_standings(as_text(answer[5])) if len(answer) > 5 else ()
    return ScoreApplied(
        new_score=new_score,
        new_rank=new_rank,
        old_score=old_score,
        old_rank=old_rank or None,
        stream_id="",
        risk=0.0,
        flagged=False,
        rate=rate,
        total_players=0,
        top=None,
        sequence=0,
        epoch="",
        replayed=True,
        periods=periods,
    )


def _applied(reply: list[Any], rule: RateRule) -> ScoreApplied:
    top_json = as_text(reply[11])
    top = None
    if top_json:
        flat = [field for entry in json.loads(top_json) for field in entry]
        top = entries_from_flat(flat, 1)
    return ScoreApplied(
        new_score=int(reply[1]),
        new_rank=int(reply[2]),
        old_score=int(reply[3]),
        old_rank=int(reply[4]) or None,
        stream_id=as_text(reply[5]),
        risk=float(reply[6]),
        flagged=bool(int(reply[7])),
        rate=RateDecision(True, rule.limit, int(reply[8]), 0.0, int(reply[9]) / 1e6),
        total_players=int(reply[10]),
        top=top,
        sequence=int(reply[12]),
        epoch=as_text(reply[13]),
        reasons=tuple(parse_reasons(as_text(reply[14]))),
        periods=period_standings(as_text(reply[15])),
    )
