"""Scripts of the rate limits and the action tokens."""

from __future__ import annotations

from scoreboard.core.ratelimit import RateDecision
from scoreboard.core.settings import RateRule
from scoreboard.storage.keys import BoardKeys
from scoreboard.storage.scripts import replies
from scoreboard.storage.scripts.transport import ScriptTransport
from scoreboard.storage.statuses import ScriptStatus, refused, status_of


class TokenScripts(ScriptTransport):
    async def rate_limit(
        self, key: str, rule: RateRule, wanted: int = 1, returned: int = 0
    ) -> RateDecision:
        """Count one request against `rule`, or take up to `wanted` at once after giving
        back `returned` taken earlier and not used."""
        reply = await self._call(
            "rate_limit", [key], [rule.limit, rule.period_us, wanted, returned]
        )
        counted = replies.read("rate_limit", reply)
        return RateDecision(
            granted=counted.int("admitted"),
            limit=rule.limit,
            remaining=counted.int("remaining"),
            retry_after=counted.int("retry_after_us") / 1e6,
            reset_after=counted.int("reset_us") / 1e6,
        )

    async def claim_signature(self, board: BoardKeys, digest: str, keep_seconds: int) -> bool:
        """True the first time the signature is claimed on the board (then kept for
        `keep_seconds`); False for a replay."""
        reply = await self._call("claim_signature", [board.signature(digest)], [keep_seconds])
        return replies.read("claim_signature", reply).int("fresh") == 1

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
        max_open: int,
        device: str = "",
    ) -> RateDecision:
        reply = await self._call(
            "issue_action_token",
            [
                board.rate_limit("action_token", user_id),
                board.action_token(token_hash),
                board.banned,
                board.open_tokens(user_id),
            ],
            [
                rule.limit,
                rule.period_us,
                user_id,
                session_id,
                action_type,
                max_increase,
                ttl_ms,
                token_hash,
                max_open,
                device,
            ],
        )
        if status_of(reply) is not ScriptStatus.OK:
            raise refused("issue_action_token", reply, rule)
        issued = replies.read("issue_action_token", reply)
        return RateDecision(
            1, rule.limit, issued.int("remaining"), 0.0, issued.int("reset_us") / 1e6
        )
