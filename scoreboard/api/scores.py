"""`/scores/*`: the score update and a player's standing."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoreboard.api.common import (
    address,
    audit,
    path_user_id,
    read_quota,
    require_access,
    services,
)
from scoreboard.auth.audit import SIGNATURE_REFUSED, TOKEN_REFUSED
from scoreboard.boards.leaderboard import iso_ms
from scoreboard.core.contract import PeriodStanding, PlayerScore, ScoreUpdate, ScoreUpdated
from scoreboard.core.errors import InvalidActionToken, ScoreValidationFailed, UserNotFound
from scoreboard.core.metrics import SCORE_UPDATES
from scoreboard.core.periods import iso_utc
from scoreboard.core.ratelimit import rate_headers
from scoreboard.http.bodies import read_body
from scoreboard.http.responses import ok
from scoreboard.scoring import signatures
from scoreboard.scoring.updates import RequestMeta

# refusals the board's stream does not record itself (no token to bind them to);
# a token of another user, or bound to another session, is in the stream already
_AUDITED_TOKEN_REFUSALS = frozenset({"unknown_or_expired", "already_used"})


async def update(request: Request) -> Response:
    claims = await require_access(request)
    token = request.headers.get("x-action-token", "")
    body = await read_body(request, ScoreUpdate)
    meta = RequestMeta(address(request), request.headers.get("user-agent", ""))
    signature = request.headers.get(signatures.HEADER)
    try:
        scored = await services(request).scoring.submit(claims, token, body, meta, signature)
    except ScoreValidationFailed as refused:
        reason = str(refused.details.get("reason", ""))
        if reason.startswith("signature_"):
            await audit(
                request,
                SIGNATURE_REFUSED,
                user_id=claims.user_id,
                result="refused",
                details={"reason": reason},
                flood=True,
            )
        raise
    except InvalidActionToken as refused:
        if refused.details.get("reason") in _AUDITED_TOKEN_REFUSALS:
            await audit(
                request,
                TOKEN_REFUSED,
                user_id=claims.user_id,
                result="refused",
                details={"reason": refused.details["reason"]},
                flood=True,
            )
        raise
    applied = scored.applied
    (REPLAYED if applied.replayed else FLAGGED if applied.flagged else ACCEPTED).inc()
    data = ScoreUpdated(
        new_score=applied.new_score,
        score_increase=applied.new_score - applied.old_score,
        rank=applied.new_rank,
        user_id=claims.user_id,
        board=scored.board,
        periods={
            period.kind: PeriodStanding(
                id=period.period_id,
                score=period.score,
                rank=period.rank,
                next_reset_at=iso_utc(period.ends_ms),
            )
            for period in applied.periods
        },
    )
    return ok(data, headers=rate_headers(applied.rate))


async def user_score(request: Request) -> Response:
    user_id = path_user_id(request)
    headers = await read_quota(request)
    svc = services(request)
    position = await svc.leaderboard.around(user_id, 0)
    if position.entries:
        entry = position.entries[0]
        found = PlayerScore(
            user_id=user_id,
            username=entry.username,
            current_score=entry.score,
            rank=entry.rank,
            last_updated=iso_ms(entry.updated_ms),
        )
        return ok(found, headers=headers)
    user = await svc.accounts.by_id(user_id)
    if user is None:
        raise UserNotFound()
    unranked = PlayerScore(
        user_id=user_id, username=user.username, current_score=0, rank=None, last_updated=None
    )
    return ok(unranked, headers=headers)


ACCEPTED, REPLAYED = SCORE_UPDATES.labels("accepted"), SCORE_UPDATES.labels("replayed")
FLAGGED = SCORE_UPDATES.labels("flagged")  # accepted, and marked for review

routes = [
    Route("/scores/update", update, methods=["POST"]),
    Route("/scores/user/{user_id}", user_score, methods=["GET"]),
]
