"""`scoreboard demo`: players on a board with periods, at a chosen rate, so the live
page moves within seconds of starting a server.

The players are plain API clients, as a game would be: each registers once, logs in,
keeps its access token and refreshes it, asks for an action token after each round and
spends it on the score update, with telemetry a real round could have produced (the
anti-cheat judge approves it). A server allows 10 logins a minute from one address, so
past the first players the rest join as the limit allows. One bot plays as a cheat
would (the most points, far too fast), so the admins' flagged queue fills too.

Credentials the demo made are kept in `SCOREBOARD_DATA_DIR/demo.json` (owner-only), so
a second run plays the same players on the same board.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyotp

from scoreboard.core.settings import Settings

BOARD = "demo"
PERIODS = ["daily", "weekly", "monthly"]
ACTION = "game_completion"
MAX_INCREASE = 100
ADMIN = "demo-admin"
BOT = "aimbot-9000"
CREDENTIALS_FILE = "demo.json"
# The default limit is 10 updates a minute per player (a burst of 10, then one every
# 6 s): a player plays at most one round in this long, so it is never refused.
MIN_ROUND_SECONDS = 6.5
BOT_ROUND_SECONDS = 7.0
# Points a round makes per second of play, at most (full skill): a player who plays
# without a pause scores under 40 points a minute, within the judge's default pace
# windows for hours (its day window flags 16,000 points, after about seven hours).
PLAY_POINTS_PER_SECOND = 0.7
REFRESH_BEFORE_SECONDS = 60
STATUS_EVERY_SECONDS = 10.0
HANDLES = [
    "NovaFox",
    "PixelOwl",
    "QuietStorm",
    "LunaByte",
    "IronWren",
    "EmberJay",
    "CobaltLynx",
    "MossRunner",
    "ZephyrKit",
    "AshPaw",
    "VelvetHawk",
    "RuneSprite",
    "TidalMoth",
    "FrostBadger",
    "OrbitFinch",
    "SableCrow",
    "GlimmerYak",
    "HollowPike",
    "CinderRoo",
    "MapleKoi",
]


class DemoError(Exception):
    """What stops the demo, in one line."""


@dataclass
class Player:
    name: str
    password: str
    skill: float  # 0.3-1: how much of a plausible round's points this player makes
    user_id: str = ""
    access: str = ""
    refresh: str = ""
    expires_at: float = 0.0
    last_round_at: float = -math.inf
    cheat: bool = False
    remember: bool = True  # its credentials kept in the data folder (not an admin's)
    otp_secret: str = ""  # the demo's admin, where the server requires one-time passwords


@dataclass
class Tally:
    answers: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)


def _players_wanted(count: int) -> list[str]:
    names = list(HANDLES)
    names += [
        f"{HANDLES[i % len(HANDLES)]}{i // len(HANDLES) + 1}" for i in range(len(HANDLES), count)
    ]
    return names[:count]


class Credentials:
    """What the demo made, per server, in the data folder: each account's password and
    latest refresh token (a later run refreshes instead of logging in again, so the
    server's login limit per address does not hold the players back)."""

    def __init__(self, data_dir: Path, url: str) -> None:
        self.path = data_dir / CREDENTIALS_FILE
        self._url = url
        try:
            self._all: dict[str, dict[str, dict[str, str]]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._all = {}

    def get(self, name: str) -> dict[str, str]:
        found = self._all.get(self._url, {}).get(name, {})
        return found if isinstance(found, dict) else {}

    def put(self, name: str, **values: str) -> None:
        self._all.setdefault(self._url, {}).setdefault(name, {}).update(values)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self._all, handle, indent=1)


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.2, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


class Demo:
    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        url: str,
        players: int,
        rate: float,
        seconds: float,
        admin: tuple[str, str] | None,
        say: Callable[[str], None],
        seed: int | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self._url = url.rstrip("/")
        self._rate = rate
        self._seconds = seconds
        self._admin = admin
        self._say = say
        self._random = random.Random(seed)  # noqa: S311 (play, not secrets)
        self._credentials = Credentials(settings.data_dir, self._url)
        self._wanted = _players_wanted(players)
        self._playing: list[Player] = []
        self._players_joined = asyncio.Event()
        self._board = BOARD
        self.tally = Tally()

    # -- the server ----------------------------------------------------------------
    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a 429 or a 503 that changed nothing is waited out and sent
        again (the server says how long in Retry-After)."""
        for _ in range(30):
            try:
                response = await self._http.request(method, f"{self._url}/v1{path}", **kwargs)
            except httpx.TransportError as exc:
                raise DemoError(
                    f"no answer from {self._url}: {exc or type(exc).__name__}"
                ) from None
            outcome = self._details(response).get("outcome")
            if response.status_code == 429 or (
                response.status_code == 503 and outcome == "not_applied"
            ):
                await asyncio.sleep(_retry_after(response))
                continue
            return response
        return response

    @staticmethod
    def _details(response: httpx.Response) -> dict[str, Any]:
        try:
            error = response.json().get("error") or {}
        except ValueError:
            return {}
        details: dict[str, Any] = error.get("details") or {}
        return details

    @staticmethod
    def _code(response: httpx.Response) -> str:
        try:
            return str((response.json().get("error") or {}).get("code", response.status_code))
        except ValueError:
            return str(response.status_code)

    async def _login(self, player: Player) -> bool:
        body = {"username": player.name, "password": player.password}
        # a step's code is accepted once: the next step's (also accepted) after it
        for ahead in (0, 30) if player.otp_secret else (0,):
            if player.otp_secret:
                body["otp"] = pyotp.TOTP(player.otp_secret).at(time.time() + ahead)
            response = await self._call("POST", "/auth/login", json=body)
            if response.status_code == 200:
                self._keep(player, response.json()["data"])
                return True
        return False

    def _keep(self, player: Player, tokens: dict[str, Any]) -> None:
        player.user_id = tokens["user_id"]
        player.access = tokens["access_token"]
        player.refresh = tokens["refresh_token"]
        player.expires_at = time.monotonic() + float(tokens["expires_in"])
        if player.remember:
            self._credentials.put(player.name, refresh=player.refresh)

    async def _refreshed(self, player: Player) -> bool:
        response = await self._call("POST", "/auth/refresh", json={"refresh_token": player.refresh})
        if response.status_code != 200:
            return False
        self._keep(player, response.json()["data"])
        return True

    async def _fresh(self, player: Player) -> None:
        """Refresh the access token shortly before it expires (a login costs the
        server a password hash; a refresh does not)."""
        if time.monotonic() < player.expires_at - REFRESH_BEFORE_SECONDS:
            return
        if not await self._refreshed(player):
            await self._login(player)

    async def _join(self, name: str, cheat: bool = False) -> Player | None:
        """Log in with the stored password, or register the name (another if the name
        is someone else's)."""
        stored = self._credentials.get(name)
        player = Player(name, stored.get("password", ""), 0.3 + 0.7 * self._random.random())
        player.cheat, player.refresh = cheat, stored.get("refresh", "")
        if player.refresh and await self._refreshed(player):
            return player
        if player.password and await self._login(player):
            return player
        for attempt in range(5):
            player.name = name if attempt == 0 else f"{name}-{secrets.token_hex(2)}"
            player.password = secrets.token_urlsafe(18)
            response = await self._call(
                "POST",
                "/auth/register",
                json={
                    "username": player.name,
                    "email": f"{player.name.lower()}@demo.invalid",
                    "password": player.password,
                },
            )
            if response.status_code == 201:
                self._credentials.put(player.name, password=player.password)
                if await self._login(player):
                    return player
                return None
            if response.status_code != 409:
                self._say(f"  could not register {player.name}: {self._code(response)}")
                return None
        return None

    # -- the board -----------------------------------------------------------------
    async def _ensure_board(self) -> None:
        boards = await self._call("GET", "/boards")
        if boards.status_code != 200:
            raise DemoError(f"GET /boards answered {boards.status_code}")
        if any(board["name"] == BOARD for board in boards.json()["data"]):
            return
        admin = await self._admin_login()
        if admin is None:
            self._board = "global"
            self._say(
                f"  no board {BOARD!r} yet and no admin to create it (give --admin NAME):"
                " playing on global"
            )
            return
        create = {"name": BOARD, "action_types": {ACTION: MAX_INCREASE}, "periods": PERIODS}
        headers = {"authorization": f"Bearer {admin}"}
        created = await self._call("POST", "/admin/boards", json=create, headers=headers)
        if self._code(created) == "MFA_REQUIRED" and self._admin is None:
            await self._enrol_admin(headers)  # the server requires one-time passwords
            created = await self._call("POST", "/admin/boards", json=create, headers=headers)
        await self._call("POST", "/auth/logout", headers={"authorization": f"Bearer {admin}"})
        if created.status_code not in (201, 409):
            raise DemoError(f"creating the board {BOARD!r}: {self._code(created)}")
        self._say(f"  created the board {BOARD!r} with {', '.join(PERIODS)} periods")

    async def _enrol_admin(self, headers: dict[str, str]) -> None:
        """The demo's own admin turns one-time passwords on, its secret kept with its
        password (owner-only, in the data folder)."""
        enrolled = await self._call("POST", "/auth/mfa/enroll", headers=headers)
        if enrolled.status_code != 200:
            raise DemoError(f"enrolling {ADMIN} in one-time passwords: {self._code(enrolled)}")
        secret = enrolled.json()["data"]["secret"]
        code = pyotp.TOTP(secret).now()
        await self._call("POST", "/auth/mfa/confirm", json={"code": code}, headers=headers)
        self._credentials.put(ADMIN, otp_secret=secret)

    async def _admin_login(self) -> str | None:
        """The access token of an admin: the one named by --admin, or (for a server on
        this machine) the demo's own admin, made in this machine's database."""
        if self._admin is not None:
            name, password = self._admin
        elif _is_loopback(self._url):
            name, password = ADMIN, await self._local_admin()
        else:
            return None
        admin = Player(name, password, 0.0, remember=False)
        if self._admin is None:
            admin.otp_secret = self._credentials.get(ADMIN).get("otp_secret", "")
        if not await self._login(admin):
            self._say(f"  the admin {name} could not log in at {self._url}")
            return None
        return admin.access

    async def _local_admin(self) -> str:
        """The demo's admin account in this machine's database (the configuration of
        this process: embedded mode's data folder, or DATABASE_URL), with a password
        known to the demo."""
        from scoreboard.api.services import open_database
        from scoreboard.auth.accounts import Accounts
        from scoreboard.auth.operator import Operator, reset_mfa, reset_password, set_role
        from scoreboard.auth.passwords import PasswordHasher

        kept = self._credentials.get(ADMIN)
        stored = kept.get("password", "")
        probe = Player(ADMIN, stored, 0.0, remember=False, otp_secret=kept.get("otp_secret", ""))
        if stored and await self._login(probe):
            return stored
        password = secrets.token_urlsafe(18)
        pool, _server = await open_database(self._settings)
        try:
            hasher = PasswordHasher(self._settings.bcrypt_rounds)
            accounts = Accounts(pool, hasher)
            user = await accounts.by_username(ADMIN)
            operator = Operator.here("demo")
            if user is None:
                await accounts.create(ADMIN, f"{ADMIN}@demo.invalid", password, role="admin")
            else:
                await reset_password(pool, hasher, user, password, operator)
                await set_role(pool, user, "admin", operator)
                await reset_mfa(pool, user, operator)  # it enrols afresh where required
        finally:
            await pool.close()
        self._credentials.put(ADMIN, password=password, otp_secret="")
        return password

    # -- playing -------------------------------------------------------------------
    def _round(self, player: Player, now: float) -> dict[str, Any]:
        """A round that took about as long as the time since the player's last one:
        points in proportion to the time played, the level and the player's skill."""
        since = now - player.last_round_at
        if player.cheat:
            return {"score_increase": MAX_INCREASE, "action_data": {"level": 1, "time_taken": 1.5}}
        played = min(since * self._random.uniform(0.6, 0.9), 240.0) if since < 1e6 else 5.0
        played = max(2.0, played)
        level = 1 + int(player.skill * 8 * self._random.random())
        judged = self._settings.points_per_second({ACTION: MAX_INCREASE})[ACTION]
        rate = min(PLAY_POINTS_PER_SECOND, judged)
        points = played * rate * player.skill * self._random.uniform(0.5, 1.0)
        increase = max(1, min(MAX_INCREASE, round(points)))
        return {
            "score_increase": increase,
            "action_data": {
                "level": level,
                "time_taken": round(played, 2),
                "accuracy": round(min(1.0, 0.4 + 0.6 * player.skill * self._random.random()), 3),
            },
        }

    async def _play(self, player: Player) -> None:
        now = time.monotonic()
        body = {"action_type": ACTION, **self._round(player, now)}
        player.last_round_at = now
        await self._fresh(player)
        auth = {"authorization": f"Bearer {player.access}"}
        issued = await self._call(
            "POST",
            "/auth/action-token",
            json={"action_type": ACTION, "session_id": f"demo-{player.name}", "board": self._board},
            headers=auth,
        )
        if issued.status_code != 200:
            self.tally.answers[f"token {self._code(issued)}"] += 1
            return
        headers = {**auth, "x-action-token": issued.json()["data"]["action_token"]}
        # A 503 whose outcome is unknown may have been applied: the same request with
        # the same token is the safe retry (the first answer comes back if it was).
        for _ in range(10):
            answer = await self._call("POST", "/scores/update", json=body, headers=headers)
            if answer.status_code != 503:
                break
            await asyncio.sleep(_retry_after(answer))
        if answer.status_code == 200:
            self.tally.answers["accepted"] += 1
        else:
            reason = self._details(answer).get("reason") or self._code(answer)
            self.tally.answers[f"refused ({reason})"] += 1

    def _next_player(self, now: float) -> Player | None:
        ready = [p for p in self._playing if now - p.last_round_at >= MIN_ROUND_SECONDS]
        return min(ready, key=lambda p: p.last_round_at) if ready else None

    async def _joining(self) -> None:
        for name in self._wanted:
            player = await self._join(name)
            if player is not None:
                self._playing.append(player)
        self._players_joined.set()

    async def _bot_plays(self) -> None:
        """The bot joins after the players (logins are limited) and plays as a cheat."""
        await self._players_joined.wait()
        bot = await self._join(BOT, cheat=True)
        while bot is not None:
            await self._play(bot)
            await asyncio.sleep(BOT_ROUND_SECONDS * self._random.uniform(0.8, 1.2))

    async def _status(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_SECONDS)
            top = await self._call("GET", f"/boards/{self._board}/top10")
            leaders = ""
            if top.status_code == 200:
                entries = top.json()["data"]["leaderboard"][:3]
                leaders = ", ".join(f"{e['username']} {e['score']}" for e in entries)
            answers = ", ".join(
                f"{count} {what}" for what, count in sorted(self.tally.answers.items())
            )
            elapsed = time.monotonic() - self.tally.started
            self._say(
                f"{elapsed:5.0f} s  {len(self._playing)} players  {answers or 'no rounds yet'}"
                f"  top: {leaders or '-'}"
            )

    async def run(self) -> None:
        try:
            health = await self._http.get(f"{self._url}/health")
        except httpx.TransportError:
            raise DemoError(
                f"nothing answers at {self._url}: start the server (make serve) or give --url"
            ) from None
        if health.status_code != 200:
            raise DemoError(f"{self._url}/health answered {health.status_code}")
        await self._ensure_board()
        period = "daily" if self._board == BOARD else "all"
        self._say(f"  live board: {self._url}/?board={self._board}&period={period}")
        self._say(f"  API docs:   {self._url}/docs")
        if self._credentials.get(ADMIN).get("password"):
            self._say(
                f"  console:    {self._url}/console (sign in as {ADMIN}; its password is in"
                f" {self._credentials.path})"
            )
        self._say(
            f"  {len(self._wanted)} players and one bot, {self._rate:g} rounds a second"
            + (f" for {self._seconds:g} s" if self._seconds else " (Ctrl-C stops)")
        )
        most = len(self._wanted) / MIN_ROUND_SECONDS
        if self._rate > most:
            self._say(
                f"  {len(self._wanted)} players play at most {most:.1f} rounds a second"
                " (the server's limit per player); add --players for more"
            )
        helpers = [
            asyncio.create_task(self._joining()),
            asyncio.create_task(self._bot_plays()),
            asyncio.create_task(self._status()),
        ]
        rounds: set[asyncio.Task[None]] = set()
        deadline = time.monotonic() + self._seconds if self._seconds else math.inf
        try:
            while time.monotonic() < deadline:
                await asyncio.sleep(self._random.expovariate(self._rate))
                player = self._next_player(time.monotonic())
                if player is not None:
                    task = asyncio.create_task(self._play(player))
                    rounds.add(task)
                    task.add_done_callback(rounds.discard)
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, *rounds, return_exceptions=True)
            answers = self.tally.answers.items()
            summary = ", ".join(f"{count} {what}" for what, count in sorted(answers))
            self._say(f"scoreboard demo: {summary or 'no rounds'}")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")
