"""The small transport every script family calls through: the scripts loaded once (with
`-- @include NAME` pasted in from `lua/include/`), and one call path per topology
(pipelined, per-primary on a cluster, or the general client), with replication waits."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from scoreboard.core.errors import UNKNOWN, ServiceUnavailable
from scoreboard.core.metrics import script_latency
from scoreboard.storage.cluster_pipeline import ClusterPipelines
from scoreboard.storage.pipeline import PipelinedConnection
from scoreboard.storage.redis_client import RedisClient, redis_errors

_INCLUDE_RE = re.compile(r"^-- @include ([a-z_]+)$", re.MULTILINE)


def lua_dir() -> Path:
    """`scoreboard/lua` in an installed wheel, the repository's `lua/` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "lua", here.parent.parent.parent / "lua"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the lua/ script directory is missing from this installation")


def load_sources() -> dict[str, str]:
    """Script name -> source with its includes pasted in."""
    root = lua_dir()

    def paste(match: re.Match[str]) -> str:
        return (root / "include" / f"{match[1]}.lua").read_text()

    return {path.stem: _INCLUDE_RE.sub(paste, path.read_text()) for path in root.glob("*.lua")}


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
IDEMPOTENT = READ_ONLY | {
    "submit_score",
    "ban_player",
    "unban_player",
    "trim_stream",
    "keep_hold",
    "release_hold",
}
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


class ScriptTransport:
    """Every script registered once, called by name. Calls go through the
    auto-pipelining connection when there is one, else through the general client;
    the families' wrappers (`Scripts` has them all) build keys and read replies."""

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
