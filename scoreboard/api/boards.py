"""`/boards/*`: every board, its rankings (all-time and current periods), a player's
standing on it, and closed periods and past seasons; `/admin/boards*`: create, change
and reset boards. The `/leaderboard/*` routes stay the `global` board's all-time."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET, UnsetType
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scoreboard.api.admin import admin_meta
from scoreboard.api.common import path_user_id, query_int, read_quota, services
from scoreboard.api.leaderboard import MAX_OFFSET, MAX_PAGE, MAX_RADIUS, around_data
from scoreboard.boards.catalogue import (
    BoardConfig,
    validate_action_types,
    validate_name,
    validate_periods,
    validate_rules,
)
from scoreboard.boards.history import history_page
from scoreboard.boards.leaderboard import board_reply
from scoreboard.boards.moderation import clean_reason
from scoreboard.boards.runtime import BoardRuntime
from scoreboard.core.contract import (
    BoardChange,
    BoardCreate,
    BoardInfo,
    PlayerStandings,
    RankingPage,
    SeasonEnded,
    Standing,
    WithReason,
)
from scoreboard.core.errors import Conflict, InvalidRequest, NotFound, UserNotFound
from scoreboard.core.event_ids import new_event_id
from scoreboard.core.periods import (
    ALL_TIME,
    Period,
    iso_utc,
    parse_period_id,
    period_at,
    period_reply,
)
from scoreboard.http.bodies import read_body
from scoreboard.http.responses import ok
from scoreboard.scoring.signatures import validate_signing

TOP10 = 10


def config_reply(config: BoardConfig, now_ms: int) -> BoardInfo:
    return BoardInfo(
        name=config.name,
        action_types=config.action_types,
        periods=[period_reply(period_at(kind, now_ms)) for kind in config.periods],
        season=config.season,
        anticheat=config.anticheat,
        signed_with=None if config.signing is None else config.signing.algorithm,
    )


async def _board(request: Request) -> tuple[BoardConfig, BoardRuntime]:
    name = request.path_params["board"]
    return await services(request).boards.board(name)


def _period(request: Request, config: BoardConfig) -> Period | None:
    kind = request.query_params.get("period", ALL_TIME)
    return services(request).boards.period(config, kind)


def _labels(config: BoardConfig, period: Period | None) -> dict[str, Any]:
    return {
        "board": config.name,
        "period": ALL_TIME if period is None else period.kind,
        "period_id": None if period is None else period.id,
        "next_reset_at": None if period is None else iso_utc(period.ends_ms),
    }


async def list_boards(request: Request) -> Response:
    headers = await read_quota(request)
    svc = services(request)
    now_ms = svc.boards.now_ms()
    boards = [config_reply(config, now_ms) for config in svc.catalog.all()]
    return ok(boards, headers=headers)


async def top10(request: Request) -> Response:
    config, runtime = await _board(request)
    period = _period(request, config)
    headers = await read_quota(request)
    page = await services(request).boards.page(runtime, period, 0, TOP10)
    data = board_reply(RankingPage, page.entries, page.total_players, **_labels(config, period))
    return ok(data, headers=headers)


async def page(request: Request) -> Response:
    config, runtime = await _board(request)
    period = _period(request, config)
    limit = query_int(request, "limit", 10, 1, MAX_PAGE)
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    headers = await read_quota(request)
    board = await services(request).boards.page(runtime, period, offset, limit)
    labels = _labels(config, period)
    data = board_reply(
        RankingPage, board.entries, board.total_players, limit=limit, offset=offset, **labels
    )
    return ok(data, headers=headers)


async def around(request: Request) -> Response:
    config, runtime = await _board(request)
    period = _period(request, config)
    user_id = path_user_id(request)
    radius = query_int(request, "radius", 5, 0, MAX_RADIUS)
    headers = await read_quota(request)
    svc = services(request)
    position = await svc.boards.around(runtime, period, user_id, radius)
    data = await around_data(svc, position, user_id, radius, **_labels(config, period))
    return ok(data, headers=headers)


async def player(request: Request) -> Response:
    """The player's score and rank in every ranking of the board."""
    config, runtime = await _board(request)
    user_id = path_user_id(request)
    headers = await read_quota(request)
    svc = services(request)
    rankings: dict[str, Standing] = {}
    username = None
    for kind in (ALL_TIME, *config.periods):
        period = svc.boards.period(config, kind)
        position = await svc.boards.around(runtime, period, user_id, 0)
        entry = position.entries[0] if position.entries else None
        if entry is not None:
            username = entry.username
        rankings[kind] = Standing(
            id=UNSET if period is None else period.id,
            score=0 if entry is None else entry.score,
            rank=None if entry is None else entry.rank,
            total_players=position.total_players,
            next_reset_at=None if period is None else iso_utc(period.ends_ms),
        )
    if username is None:
        user = await svc.accounts.by_id(user_id)
        if user is None:
            raise UserNotFound()
        username = user.username
    data = PlayerStandings(user_id=user_id, username=username, board=config.name, periods=rankings)
    return ok(data, headers=headers)


async def history(request: Request) -> Response:
    config, _ = await _board(request)
    period = parse_period_id(request.path_params["period_id"])
    if period is None:
        raise InvalidRequest(
            "period_id must be like daily:2026-11-30, weekly:2026-W48, monthly:2026-11 or season:3",
            details={"field": "period_id"},
        )
    limit = query_int(request, "limit", 10, 1, MAX_PAGE)
    offset = query_int(request, "offset", 0, 0, MAX_OFFSET)
    headers = await read_quota(request)
    found = await history_page(services(request).reads, config.name, period, offset, limit)
    if found is None:
        raise NotFound("That season has not ended")
    entries, total = found
    data = board_reply(
        RankingPage,
        entries,
        total,
        limit=limit,
        offset=offset,
        board=config.name,
        period=period.kind,
        period_id=period.id,
        starts_at=iso_utc(period.starts_ms) if period.kind != "season" else None,
        ends_at=iso_utc(period.ends_ms) if period.kind != "season" else None,
    )
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
    return ok(config_reply(created, svc.boards.now_ms()), status=201)


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
    return ok(config_reply(changed, svc.boards.now_ms()))


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
