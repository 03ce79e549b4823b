"""`/leaderboard/*`: the top 10, pages of the board, and the neighbourhood of a player."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoreboard.api.common import path_user_id, query_int, read_quota, services
from scoreboard.api.services import Services
from scoreboard.boards.leaderboard import board_reply, entry_reply
from scoreboard.core.contract import Around, Board
from scoreboard.core.errors import UserNotFound
from scoreboard.http.responses import ok
from scoreboard.storage.scripts import PlayerPosition

MAX_PAGE = 100
MAX_OFFSET = 10_000_000
MAX_RADIUS = 50


async def top10(request: Request) -> Response:
    svc = services(request)
    headers = await read_quota(request, svc)
    snapshot = await svc.leaderboard.top()
    return Response(snapshot.top10_body(), media_type="application/json", headers=headers)


async def page(request: Request) -> Response:
    limit = query_int(request, "limit", 10, 1, MAX_PAGE)
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    headers = await read_quota(request)
    board = await services(request).leaderboard.page(offset, limit)
    data = board_reply(Board, board.entries, board.total_players, limit=limit, offset=offset)
    return ok(data, headers=headers)


async def around(request: Request) -> Response:
    user_id = path_user_id(request)
    radius = query_int(request, "radius", 5, 0, MAX_RADIUS)
    headers = await read_quota(request)
    svc = services(request)
    position = await svc.leaderboard.around(user_id, radius)
    return ok(await around_data(svc, position, user_id, radius), headers=headers)


async def around_data(
    svc: Services, position: PlayerPosition, user_id: str, radius: int, **labels: Any
) -> Around:
    """A player's neighbourhood in a ranking; 404 for no such player."""
    if not position.entries and await svc.accounts.by_id(user_id) is None:
        raise UserNotFound()
    return Around(
        user_id=user_id,
        rank=position.rank or None,
        radius=radius,
        leaderboard=[entry_reply(entry) for entry in position.entries],
        total_players=position.total_players,
        **labels,
    )


routes = [
    Route("/leaderboard/top10", top10, methods=["GET"]),
    Route("/leaderboard", page, methods=["GET"]),
    Route("/leaderboard/around/{user_id}", around, methods=["GET"]),
]
