"""The board reads, answered once for both front doors: the REST routes of
`/boards/*` and the GraphQL queries of `/graphql` build their answers from these."""

from __future__ import annotations

from typing import Any

from msgspec import UNSET

from scoreboard.api.leaderboard import around_data
from scoreboard.api.services import Services
from scoreboard.boards.catalogue import BoardConfig
from scoreboard.boards.history import history_page
from scoreboard.boards.leaderboard import board_reply
from scoreboard.core.contract import Around, BoardInfo, PlayerStandings, RankingPage, Standing
from scoreboard.core.errors import InvalidRequest, NotFound, UserNotFound
from scoreboard.core.periods import (
    ALL_TIME,
    Period,
    iso_utc,
    parse_period_id,
    period_at,
    period_reply,
)


def config_reply(config: BoardConfig, now_ms: int) -> BoardInfo:
    return BoardInfo(
        name=config.name,
        action_types=config.action_types,
        periods=[period_reply(period_at(kind, now_ms)) for kind in config.periods],
        season=config.season,
        anticheat=config.anticheat,
        signed_with=None if config.signing is None else config.signing.algorithm,
    )


def boards(svc: Services) -> list[BoardInfo]:
    now_ms = svc.boards.now_ms()
    return [config_reply(config, now_ms) for config in svc.catalog.all()]


def _labels(config: BoardConfig, period: Period | None) -> dict[str, Any]:
    return {
        "board": config.name,
        "period": ALL_TIME if period is None else period.kind,
        "period_id": None if period is None else period.id,
        "next_reset_at": None if period is None else iso_utc(period.ends_ms),
    }


async def ranking(
    svc: Services, board: str, kind: str, offset: int, limit: int, *, paged: bool = True
) -> RankingPage:
    """A page of the board's ranking of `kind` ('all' or one of its period kinds)."""
    config, runtime = await svc.boards.board(board)
    period = svc.boards.period(config, kind)
    page = await svc.boards.page(runtime, period, offset, limit)
    extra: dict[str, Any] = {"limit": limit, "offset": offset} if paged else {}
    labels = _labels(config, period)
    return board_reply(RankingPage, page.entries, page.total_players, **extra, **labels)


async def around(svc: Services, board: str, kind: str, user_id: str, radius: int) -> Around:
    config, runtime = await svc.boards.board(board)
    period = svc.boards.period(config, kind)
    position = await svc.boards.around(runtime, period, user_id, radius)
    return await around_data(svc, position, user_id, radius, **_labels(config, period))


async def standings(svc: Services, board: str, user_id: str) -> PlayerStandings:
    """The player's score and rank in every ranking of the board."""
    config, runtime = await svc.boards.board(board)
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
    return PlayerStandings(user_id=user_id, username=username, board=config.name, periods=rankings)


async def closed(svc: Services, board: str, period_id: str, offset: int, limit: int) -> RankingPage:
    """A closed period's or an ended season's final standings, from history."""
    config, _ = await svc.boards.board(board)
    period = parse_period_id(period_id)
    if period is None:
        raise InvalidRequest(
            "period_id must be like daily:2026-11-30, weekly:2026-W48, monthly:2026-11 or season:3",
            details={"field": "period_id"},
        )
    found = await history_page(svc.reads, config.name, period, offset, limit)
    if found is None:
        raise NotFound("That season has not ended")
    entries, total = found
    return board_reply(
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
