"""`/boards/*`: every board, its rankings (all-time and current periods), a player's
standing on it, and closed periods and past seasons; `/admin/boards*`: create, change
and reset boards. The `/leaderboard/*` routes stay the `global` board's all-time."""

from __future__ import annotations

from msgspec import UnsetType
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoreboard.api import rankings
from scoreboard.api.admin import admin_meta
from scoreboard.api.common import path_user_id, query_int, read_quota, services
from scoreboard.api.leaderboard import MAX_OFFSET, MAX_PAGE, MAX_RADIUS
from scoreboard.boards.catalogue import (
    BoardConfig,
    validate_action_types,
    validate_name,
    validate_periods,
    validate_rules,
)
from scoreboard.boards.moderation import clean_reason
from scoreboard.boards.runtime import BoardRuntime
from scoreboard.core.contract import BoardChange, BoardCreate, SeasonEnded, WithReason
from scoreboard.core.errors import Conflict
from scoreboard.core.event_ids import new_event_id
from scoreboard.core.periods import ALL_TIME
from scoreboard.http.bodies import read_body
from scoreboard.http.responses import ok
from scoreboard.scoring.signatures import validate_signing

TOP10 = 10


def _kind(request: Request) -> str:
    return request.query_params.get("period", ALL_TIME)


async def _board(request: Request) -> tuple[BoardConfig, BoardRuntime]:
    name = request.path_params["board"]
    return await services(request).boards.board(name)


async def list_boards(request: Request) -> Response:
    headers = await read_quota(request)
    return ok(rankings.boards(services(request)), headers=headers)


async def top10(request: Request) -> Response:
    board, kind = request.path_params["board"], _kind(request)
    headers = await read_quota(request)
    data = await rankings.ranking(services(request), board, kind, 0, TOP10, paged=False)
    return ok(data, headers=headers)


async def page(request: Request) -> Response:
    board, kind = request.path_params["board"], _kind(request)
    limit = query_int(request, "limit", 10, 1, MAX_PAGE)
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    headers = await read_quota(request)
    data = await rankings.ranking(services(request), board, kind, offset, limit)
    return ok(data, headers=headers)


async def around(request: Request) -> Response:
    board, kind = request.path_params["board"], _kind(request)
    user_id = path_user_id(request)
    radius = query_int(request, "radius", 5, 0, MAX_RADIUS)
    headers = await read_quota(request)
    data = await rankings.around(services(request), board, kind, user_id, radius)
    return ok(data, headers=headers)


async def player(request: Request) -> Response:
    """The player's score and rank in every ranking of the board."""
    board = request.path_params["board"]
    user_id = path_user_id(request)
    headers = await read_quota(request)
    return ok(await rankings.standings(services(request), board, user_id), headers=headers)


async def history(request: Request) -> Response:
    board, period_id = request.path_params["board"], request.path_params["period_id"]
    limit = query_int(request, "limit", 10, 1, MAX_PAGE)
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    headers = await read_quota(request)
    data = await rankings.closed(services(request), board, period_id, offset, limit)
    return ok(data, headers=headers)


async def create_board(request: Request) -> Response:
    await admin_meta(request)
    svc = services(request)
    body = await read_body(request, BoardCreate)
    name = validate_name(body.name)
    action_types = validate_action_types(body.action_types, svc.settings.score_ceiling)
    periods = validate_periods([] if isinstance(body.periods, UnsetType) else body.periods)
    rules = None if isinstance(body.anticheat, UnsetType) else body.anticheat
    if rules is not None:
        validate_rules(rules, action_types)
    signing = None if isinstance(body.signing, UnsetType) or body.signing is None else body.signing
    if signing is not None:
        validate_signing(signing)
    created = await svc.catalog.create(name, action_types, periods, rules, signing)
    if created is None:
        raise Conflict("A board of that name exists", details={"field": "name"})
    await svc.boards.ready(name)  # built (empty) before the answer: tokens work at once
    return ok(rankings.config_reply(created, svc.boards.now_ms()), status=201)


async def change_board(request: Request) -> Response:
    await admin_meta(request)
    svc = services(request)
    name = request.path_params["board"]
    current = await svc.catalog.find(name)
    body = await read_body(request, BoardChange)
    action_types = (
        None
        if isinstance(body.action_types, UnsetType)
        else validate_action_types(body.action_types, svc.settings.score_ceiling)
    )
    periods = None if isinstance(body.periods, UnsetType) else validate_periods(body.periods)
    rules = current.anticheat if isinstance(body.anticheat, UnsetType) else body.anticheat
    validate_rules(rules, current.action_types if action_types is None else action_types)
    given = None if isinstance(body.anticheat, UnsetType) else body.anticheat
    if not isinstance(body.signing, UnsetType) and body.signing is not None:
        validate_signing(body.signing)
    changed = await svc.catalog.update(name, action_types, periods, given, body.signing)
    return ok(rankings.config_reply(changed, svc.boards.now_ms()))


async def reset_board(request: Request) -> Response:
    meta = await admin_meta(request)
    svc = services(request)
    config, runtime = await _board(request)
    reason = clean_reason((await read_body(request, WithReason)).reason)
    ended = await svc.scripts.reset_season(
        runtime.keys,
        stored_season=config.season,
        event_id=new_event_id(),
        admin_id=meta.admin_id,
        reason=reason,
        ip=meta.ip,
        user_agent=meta.user_agent[:256],
    )
    await svc.catalog.set_season(config.name, ended.season)
    await runtime.leaderboard.on_board_changed()
    data = SeasonEnded(
        board=config.name,
        ended_season=ended.ended,
        season=ended.season,
        players=ended.players,
        archive=f"season:{ended.ended}",
    )
    return ok(data)


routes = [
    Route("/boards", list_boards, methods=["GET"]),
    Route("/boards/{board}/top10", top10, methods=["GET"]),
    Route("/boards/{board}/leaderboard", page, methods=["GET"]),
    Route("/boards/{board}/around/{user_id}", around, methods=["GET"]),
    Route("/boards/{board}/players/{user_id}", player, methods=["GET"]),
    Route("/boards/{board}/history/{period_id}", history, methods=["GET"]),
    Route("/admin/boards", create_board, methods=["POST"]),
    Route("/admin/boards/{board}", change_board, methods=["PATCH"]),
    Route("/admin/boards/{board}/reset", reset_board, methods=["POST"]),
]
