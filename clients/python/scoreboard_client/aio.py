"""The asynchronous client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any, cast

import httpx

from scoreboard_client import types
from scoreboard_client._core import (
    RETRY_FOR_SECONDS,
    Events,
    Request,
    ScoreboardError,
    Session,
    backoff,
    feed_params,
    path,
    read,
    retry_after,
    update_body,
    worth_sending_again,
)


class AsyncClient:
    """One player's (or admin's) connection to a scoreboard server.

    `login` keeps the tokens and every call refreshes the access token shortly before
    it expires. `play` asks for an action token and spends it on the score update; an
    update whose answer was lost, or refused for now (503, 429), is sent again with the
    same token and body, so it counts once."""

    def __init__(
        self, base_url: str, *, http: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._own_http = http is None
        self.session = Session()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # -- plumbing ----------------------------------------------------------------
    async def _send(self, request: Request, extra_headers: dict[str, str] | None = None) -> Any:
        headers = dict(extra_headers or {})
        if request.auth:
            if self.session.due():
                await self.refresh()
            headers["authorization"] = f"Bearer {self.session.access_token}"
        response = await self._http.request(
            request.method,
            self.base_url + request.path,
            json=request.body,
            params=request.query(),
            headers=headers,
        )
        return read(response)

    async def _call(self, request: Request, extra_headers: dict[str, str] | None = None) -> Any:
        try:
            return await self._send(request, extra_headers)
        except ScoreboardError as error:
            # an access token refused (expired early, clocks apart): refresh once
            if not (request.auth and error.status == 401 and self.session.refresh_token):
                raise
        await self.refresh()
        return await self._send(request, extra_headers)

    # -- accounts ----------------------------------------------------------------
    async def register(self, username: str, email: str, password: str) -> types.Registered:
        body = {"username": username, "email": email, "password": password}
        return cast(
            types.Registered, await self._call(Request("POST", path("auth", "register"), body))
        )

    async def login(
        self, username: str, password: str, device: types.Device | None = None
    ) -> types.TokenPair:
        """Sign in; `device` ({"id": ...} or {"fingerprint": ...}) opens the session from
        a registered device, to which its action tokens are then bound."""
        body: dict[str, object] = {"username": username, "password": password}
        if device is not None:
            body["device"] = device
        pair = cast(types.TokenPair, await self._call(Request("POST", path("auth", "login"), body)))
        self.session.keep(dict(pair))
        return pair

    async def refresh(self) -> types.TokenPair:
        body = {"refresh_token": self.session.refresh_token}
        pair = cast(
            types.TokenPair, await self._send(Request("POST", path("auth", "refresh"), body))
        )
        self.session.keep(dict(pair))
        return pair

    async def logout(self) -> None:
        await self._call(Request("POST", path("auth", "logout"), auth=True))
        self.session.forget()

    # -- playing -----------------------------------------------------------------
    async def action_token(
        self, action_type: str, session_id: str, board: str | None = None
    ) -> types.ActionTokenIssued:
        body: dict[str, Any] = {"action_type": action_type, "session_id": session_id}
        if board is not None:
            body["board"] = board
        request = Request("POST", path("auth", "action-token"), body, auth=True)
        return cast(types.ActionTokenIssued, await self._call(request))

    async def submit_score(
        self,
        score_increase: int,
        *,
        action_token: str,
        action_type: str | None = None,
        session_id: str | None = None,
        action_data: dict[str, Any] | None = None,
        retry_for: float = RETRY_FOR_SECONDS,
    ) -> types.ScoreUpdated:
        """Spend the action token on the update. A lost answer, a 503 or a 429 is
        followed by the same request again (same token, same body) until a real answer
        comes or `retry_for` seconds pass: the first answer is the one true answer."""
        body = update_body(score_increase, action_type, session_id, action_data)
        request = Request("POST", path("scores", "update"), body, auth=True)
        deadline = time.monotonic() + retry_for
        attempt = 0
        while True:
            try:
                answer = await self._call(request, {"x-action-token": action_token})
                return cast(types.ScoreUpdated, answer)
            except ScoreboardError as error:
                if not worth_sending_again(error) or time.monotonic() >= deadline:
                    raise
                wait = retry_after(error)
            except httpx.TransportError:
                if time.monotonic() >= deadline:
                    raise
                wait = backoff(attempt)
            attempt += 1
            await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))

    async def play(
        self,
        score_increase: int,
        *,
        session_id: str,
        action_type: str = "game_completion",
        board: str | None = None,
        action_data: dict[str, Any] | None = None,
    ) -> types.ScoreUpdated:
        """One finished action: a token for it, then the update with its safe retry."""
        issued = await self.action_token(action_type, session_id, board)
        return await self.submit_score(
            score_increase,
            action_token=issued["action_token"],
            action_type=action_type,
            session_id=session_id,
            action_data=action_data,
        )

    # -- reads -------------------------------------------------------------------
    async def boards(self) -> list[types.BoardInfo]:
        return cast(list[types.BoardInfo], await self._call(Request("GET", path("boards"))))

    async def top10(self, board: str = "global", period: str = "all") -> types.RankingPage:
        request = Request("GET", path("boards", board, "top10"), params={"period": period})
        return cast(types.RankingPage, await self._call(request))

    async def leaderboard(
        self, board: str = "global", period: str = "all", *, limit: int = 10, offset: int = 0
    ) -> types.RankingPage:
        params = {"period": period, "limit": limit, "offset": offset}
        request = Request("GET", path("boards", board, "leaderboard"), params=params)
        return cast(types.RankingPage, await self._call(request))

    async def around(
        self, user_id: str, board: str = "global", period: str = "all", *, radius: int = 5
    ) -> types.Around:
        params = {"period": period, "radius": radius}
        request = Request("GET", path("boards", board, "around", user_id), params=params)
        return cast(types.Around, await self._call(request))

    async def player(self, user_id: str, board: str = "global") -> types.PlayerStandings:
        request = Request("GET", path("boards", board, "players", user_id))
        return cast(types.PlayerStandings, await self._call(request))

    # -- admin -------------------------------------------------------------------
    async def ban(self, user_id: str, reason: str) -> types.BanChanged:
        request = Request(
            "POST", path("admin", "players", user_id, "ban"), {"reason": reason}, auth=True
        )
        return cast(types.BanChanged, await self._call(request))

    async def unban(self, user_id: str, reason: str | None = None) -> types.BanChanged:
        body = {} if reason is None else {"reason": reason}
        request = Request("POST", path("admin", "players", user_id, "unban"), body, auth=True)
        return cast(types.BanChanged, await self._call(request))

    async def adjust(self, user_id: str, delta: int, reason: str) -> types.ScoreAdjusted:
        body = {"delta": delta, "reason": reason}
        request = Request("POST", path("admin", "players", user_id, "adjust"), body, auth=True)
        return cast(types.ScoreAdjusted, await self._call(request))

    async def remove_score(self, user_id: str, reason: str) -> types.ScoreRemoved:
        body = {"reason": reason}
        request = Request("DELETE", path("admin", "players", user_id, "score"), body, auth=True)
        return cast(types.ScoreRemoved, await self._call(request))

    async def flagged(self, *, limit: int = 50, cursor: str | None = None) -> types.AuditPage:
        params = {"limit": limit, "cursor": cursor}
        request = Request("GET", path("admin", "flagged"), params=params, auth=True)
        return cast(types.AuditPage, await self._call(request))

    async def history(
        self, user_id: str, *, limit: int = 50, cursor: str | None = None
    ) -> types.AuditPage:
        params = {"limit": limit, "cursor": cursor}
        request = Request(
            "GET", path("admin", "players", user_id, "history"), params=params, auth=True
        )
        return cast(types.AuditPage, await self._call(request))

    async def audit(
        self,
        *,
        event_type: str | None = None,
        user_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> types.AuditPage:
        params = {
            "event_type": event_type,
            "user_id": user_id,
            "since": since,
            "until": until,
            "limit": limit,
            "cursor": cursor,
        }
        request = Request("GET", path("admin", "audit"), params=params, auth=True)
        return cast(types.AuditPage, await self._call(request))

    async def create_board(
        self, name: str, action_types: dict[str, int], periods: list[str] | None = None
    ) -> types.BoardInfo:
        body: dict[str, Any] = {"name": name, "action_types": action_types}
        if periods is not None:
            body["periods"] = periods
        request = Request("POST", path("admin", "boards"), body, auth=True)
        return cast(types.BoardInfo, await self._call(request))

    async def reset_season(self, board: str, reason: str) -> types.SeasonEnded:
        request = Request(
            "POST", path("admin", "boards", board, "reset"), {"reason": reason}, auth=True
        )
        return cast(types.SeasonEnded, await self._call(request))

    # -- live --------------------------------------------------------------------
    async def follow(
        self, board: str = "global", period: str = "all"
    ) -> AsyncGenerator[types.LeaderboardUpdate, None]:
        """The ranking's live feed (server-sent events): the whole board first, then
        each change. A dropped connection is opened again with backoff; the server sends
        the whole board on every connection, so the caller is in step again at once."""
        events = Events()
        attempt = 0
        while True:
            headers = {"accept": "text/event-stream"}
            if events.last_id:
                headers["last-event-id"] = events.last_id
            try:
                async with self._http.stream(
                    "GET",
                    f"{self.base_url}/sse/leaderboard",
                    params=feed_params(board, period),
                    headers=headers,
                    timeout=httpx.Timeout(10.0, read=None),
                ) as response:
                    if response.status_code != 200:
                        read(httpx.Response(response.status_code, content=await response.aread()))
                    async for line in response.aiter_lines():
                        update = events.feed(line)
                        if update is not None:
                            attempt = 0
                            yield cast(types.LeaderboardUpdate, update[1])
            except ScoreboardError as error:
                if error.status not in (429, 503):
                    raise
            except httpx.TransportError:
                pass
            await asyncio.sleep(backoff(attempt))
            attempt += 1
