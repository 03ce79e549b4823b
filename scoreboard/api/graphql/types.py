"""The GraphQL schema's types, each built from the contract's answer of the same read
(`scoreboard.core.contract`), so REST and GraphQL say the same things."""

from __future__ import annotations

from typing import NewType

import strawberry
from msgspec import UnsetType
from strawberry.types.scalar import ScalarDefinition

from scoreboard.core import contract

# Scores reach 2^53 - 1, beyond GraphQL's 32-bit Int: a scalar of their own (SCALARS
# maps it for the schema)
SafeInt = NewType("SafeInt", int)
SCALARS: dict[object, ScalarDefinition] = {
    SafeInt: strawberry.scalar(
        name="SafeInt",
        description="A whole number from -(2^53 - 1) to 2^53 - 1 (a score)",
        serialize=int,
        parse_value=int,
    )
}


@strawberry.type(description="A player's place in a ranking")
class Entry:
    rank: int
    user_id: strawberry.ID
    username: str
    score: SafeInt
    last_updated: str | None

    @classmethod
    def of(cls, entry: contract.Entry) -> Entry:
        return cls(
            rank=entry.rank,
            user_id=strawberry.ID(entry.user_id),
            username=entry.username,
            score=SafeInt(entry.score),
            last_updated=entry.last_updated,
        )


def _entries(entries: list[contract.Entry]) -> list[Entry]:
    return [Entry.of(entry) for entry in entries]


def _maybe(value: str | UnsetType | None) -> str | None:
    return None if isinstance(value, UnsetType) else value


@strawberry.type(description="A page of one ranking of a board")
class Ranking:
    board: str
    period: str
    period_id: str | None
    next_reset_at: str | None
    starts_at: str | None
    ends_at: str | None
    total_players: int
    last_updated: str | None
    entries: list[Entry]

    @classmethod
    def of(cls, page: contract.RankingPage) -> Ranking:
        return cls(
            board=page.board,
            period=page.period,
            period_id=page.period_id,
            next_reset_at=_maybe(page.next_reset_at),
            starts_at=_maybe(page.starts_at),
            ends_at=_maybe(page.ends_at),
            total_players=page.total_players,
            last_updated=page.last_updated,
            entries=_entries(page.leaderboard),
        )


@strawberry.type(description="A player's neighbourhood in a ranking")
class Around:
    user_id: strawberry.ID
    rank: int | None
    total_players: int
    entries: list[Entry]

    @classmethod
    def of(cls, around: contract.Around) -> Around:
        return cls(
            user_id=strawberry.ID(around.user_id),
            rank=around.rank,
            total_players=around.total_players,
            entries=_entries(around.leaderboard),
        )


@strawberry.type(description="A player in one ranking of a board")
class Standing:
    period: str  # 'all' or a period kind
    period_id: str | None
    score: SafeInt
    rank: int | None
    total_players: int
    next_reset_at: str | None


@strawberry.type(description="A player's standing in every ranking of a board")
class PlayerStandings:
    user_id: strawberry.ID
    username: str
    board: str
    standings: list[Standing]

    @classmethod
    def of(cls, found: contract.PlayerStandings) -> PlayerStandings:
        return cls(
            user_id=strawberry.ID(found.user_id),
            username=found.username,
            board=found.board,
            standings=[
                Standing(
                    period=kind,
                    period_id=_maybe(standing.id),
                    score=SafeInt(standing.score),
                    rank=standing.rank,
                    total_players=standing.total_players,
                    next_reset_at=standing.next_reset_at,
                )
                for kind, standing in found.periods.items()
            ],
        )


@strawberry.type(description="One of a board's action types and its largest increase")
class ActionType:
    name: str
    max_increase: SafeInt


@strawberry.type(description="A board's current period of one kind")
class Period:
    kind: str
    id: str
    starts_at: str
    ends_at: str


@strawberry.type(description="A board, its action types, current periods and season")
class Board:
    name: str
    action_types: list[ActionType]
    periods: list[Period]
    season: int
    signed_with: str | None

    @classmethod
    def of(cls, info: contract.BoardInfo) -> Board:
        return cls(
            name=info.name,
            action_types=[
                ActionType(name=n, max_increase=SafeInt(m)) for n, m in info.action_types.items()
            ],
            periods=[
                Period(kind=p.kind, id=p.id, starts_at=p.starts_at, ends_at=p.ends_at)
                for p in info.periods
            ],
            season=info.season,
            signed_with=info.signed_with,
        )


@strawberry.type(description="One player's move in a live update")
class Change:
    user_id: strawberry.ID
    username: str
    old_rank: int | None
    new_rank: int | None
    score_change: SafeInt
    new_score: SafeInt


@strawberry.type(description="A ranking's top after a change (the first one: as it stands)")
class LeaderboardUpdate:
    board: str
    period: str
    entries: list[Entry]
    total_players: int
    timestamp: str | None
    changes: list[Change]

    @classmethod
    def of(cls, board: str, period: str, update: contract.LeaderboardUpdate) -> LeaderboardUpdate:
        return cls(
            board=board,
            period=period,
            entries=_entries(update.leaderboard),
            total_players=update.total_players,
            timestamp=update.timestamp,
            changes=[
                Change(
                    user_id=strawberry.ID(change.user_id),
                    username=change.username,
                    old_rank=change.old_rank,
                    new_rank=change.new_rank,
                    score_change=SafeInt(change.score_change),
                    new_score=SafeInt(change.new_score),
                )
                for change in update.updated_users
            ],
        )
