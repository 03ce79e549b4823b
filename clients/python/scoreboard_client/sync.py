"""The synchronous client: the asynchronous one, run on an event loop of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

from scoreboard_client import types
from scoreboard_client._core import RETRY_FOR_SECONDS, Session
from scoreboard_client.aio import AsyncClient

T = TypeVar("T")


class Client:
    """The same calls as `AsyncClient`, each answering when it is done. Not for use
    inside a running event loop (use `AsyncClient` there)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._runner = asyncio.Runner()
        self._async = AsyncClient(base_url, timeout=timeout)

    @property
    def session(self) -> Session:
        return self._async.session

    def _run(self, call: Awaitable[T]) -> T:
        async def wrapped() -> T:
            return await call

        return self._runner.run(wrapped())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._run(self._async.aclose())
        self._runner.close()

    def register(self, username: str, email: str, password: str) -> types.Registered:
        return self._run(self._async.register(username, email, password))

    def login(
        self, username: str, password: str, device: types.Device | None = None
    ) -> types.TokenPair:
        return self._run(self._async.login(username, password, device))

    def refresh(self) -> types.TokenPair:
        return self._run(self._async.refresh())

    def logout(self) -> None:
        self._run(self._async.logout())

    def action_token(
        self, action_type: str, session_id: str, board: str | None = None
    ) -> types.ActionTokenIssued:
        return self._run(self._async.action_token(action_type, session_id, board))

    def submit_score(
        self,
        score_increase: int,
        *,
        action_token: str,
        retry_for: float = RETRY_FOR_SECONDS,
        **fields: Any,
    ) -> types.ScoreUpdated:
        """See `AsyncClient.submit_score` (fields: action_type, session_id, action_data)."""
        return self._run(
            self._async.submit_score(
                score_increase, action_token=action_token, retry_for=retry_for, **fields
            )
        )

    def play(self, score_increase: int, *, session_id: str, **fields: Any) -> types.ScoreUpdated:
        """See `AsyncClient.play` (fields: action_type, board, action_data)."""
        return self._run(self._async.play(score_increase, session_id=session_id, **fields))

    def boards(self) -> list[types.BoardInfo]:
        return self._run(self._async.boards())

    def top10(self, board: str = "global", period: str = "all") -> types.RankingPage:
        return self._run(self._async.top10(board, period))

    def leaderboard(
        self, board: str = "global", period: str = "all", **page: int
    ) -> types.RankingPage:
        return self._run(self._async.leaderboard(board, period, **page))

    def around(
        self, user_id: str, board: str = "global", period: str = "all", **radius: int
    ) -> types.Around:
        return self._run(self._async.around(user_id, board, period, **radius))

    def player(self, user_id: str, board: str = "global") -> types.PlayerStandings:
        return self._run(self._async.player(user_id, board))

    def ban(self, user_id: str, reason: str) -> types.BanChanged:
        return self._run(self._async.ban(user_id, reason))

    def unban(self, user_id: str, reason: str | None = None) -> types.BanChanged:
        return self._run(self._async.unban(user_id, reason))

    def adjust(self, user_id: str, delta: int, reason: str) -> types.ScoreAdjusted:
        return self._run(self._async.adjust(user_id, delta, reason))

    def remove_score(self, user_id: str, reason: str) -> types.ScoreRemoved:
        return self._run(self._async.remove_score(user_id, reason))

    def flagged(self, **page: Any) -> types.AuditPage:
        return self._run(self._async.flagged(**page))

    def history(self, user_id: str, **page: Any) -> types.AuditPage:
        return self._run(self._async.history(user_id, **page))

    def audit(self, **filters: Any) -> types.AuditPage:
        """See `AsyncClient.audit` (event_type, user_id, since, until, limit, cursor)."""
        return self._run(self._async.audit(**filters))

    def create_board(
        self, name: str, action_types: dict[str, int], periods: list[str] | None = None
    ) -> types.BoardInfo:
        return self._run(self._async.create_board(name, action_types, periods))

    def reset_season(self, board: str, reason: str) -> types.SeasonEnded:
        return self._run(self._async.reset_season(board, reason))

    def follow(
        self, board: str = "global", period: str = "all"
    ) -> Iterator[types.LeaderboardUpdate]:
        """See `AsyncClient.follow`; stop by leaving the loop."""
        updates = self._async.follow(board, period)
        try:
            while True:
                yield self._run(updates.__anext__())
        finally:
            self._run(updates.aclose())
