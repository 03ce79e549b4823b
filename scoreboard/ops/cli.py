"""`scoreboard serve | sync | migrate | users … | rebuild | reconcile | demo | tls-cert`."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from scoreboard.core import logs, tracing
from scoreboard.core.errors import ScoreboardError, SettingsError
from scoreboard.core.settings import Settings, unknown_variables
from scoreboard.ops import tls
from scoreboard.ops.parser import parser

SHUTDOWN_GRACE_SECONDS = 10
EXIT_USAGE = 2
EXIT_FAILED = 1


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from scoreboard.api.app import create_app
    from scoreboard.http.protocol import PROTOCOL_PATH as HTTP_PROTOCOL_PATH
    from scoreboard.http.ws_protocol import PROTOCOL_PATH
    from scoreboard.storage.embedded import banner, hold_data_dir
    from scoreboard.storage.preflight import preflight

    settings.require_secrets()
    if args.workers < 1:
        raise SettingsError("--workers: must be at least 1")
    if settings.embedded and args.workers > 1:
        raise SettingsError(
            "--workers: embedded mode runs in one process; set REDIS_URL and DATABASE_URL"
            " to serve with several workers"
        )
    held = hold_data_dir(settings.data_dir) if settings.embedded else None
    if held is not None:
        print(banner(settings.data_dir), file=sys.stderr, flush=True)
    asyncio.run(preflight(settings))  # one clear line, before any worker starts
    _check_port_free(args.host, args.port)
    common = {
        "host": args.host,
        "port": args.port,
        "proxy_headers": False,
        "server_header": False,
        "log_level": "info",
        "log_config": logs.config(settings.log_format),
        "access_log": args.access_log,
        "ws_max_size": settings.ws_max_message_bytes,
        # A client that has not answered a ping within one more interval is gone.
        "ws_ping_interval": settings.ws_ping_interval_ms / 1000,
        "ws_ping_timeout": settings.ws_ping_interval_ms / 1000,
        # Compressing each message per client costs more CPU than the fan-out itself,
        # and inflating client frames invites compression bombs.
        "ws_per_message_deflate": False,
        "ws": PROTOCOL_PATH,
        # A deadline for reading each request (slowloris); see scoreboard/http/protocol.py.
        "http": HTTP_PROTOCOL_PATH,
        # SIGTERM: stop accepting, close WebSockets (1001) and end SSE streams, finish
        # in-flight requests, and give up on what is left after this long.
        "timeout_graceful_shutdown": SHUTDOWN_GRACE_SECONDS,
    }
    # uvicorn re-raises SIGTERM once it has shut down, which would end the process with
    # that signal; a graceful stop is a success (exit 0) for supervisors.
    signal.signal(signal.SIGTERM, lambda *_: None)
    if args.workers == 1:
        uvicorn.run(create_app(settings), **common)
        return 0
    with _metrics_directory():
        uvicorn.run(
            "scoreboard.api.app:create_app_from_env", factory=True, workers=args.workers, **common
        )
    return 0


def _check_port_free(host: str, port: int) -> None:
    """A port already taken is one line before anything starts (uvicorn would say so
    only after the whole start, among its log lines). Bound as uvicorn binds it."""
    from scoreboard.storage.preflight import StartupError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise StartupError(f"cannot listen on {host}:{port}: {reason}") from None


@contextmanager
def _metrics_directory() -> Iterator[None]:
    """Where the workers keep their metric samples for /metrics to add up: the
    operator's PROMETHEUS_MULTIPROC_DIR, or a fresh directory removed afterwards."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="scoreboard-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


async def _migrate(settings: Settings) -> int:
    from scoreboard.api.services import open_database
    from scoreboard.storage.migrations import available

    pool, _server = await open_database(settings)
    await pool.close()
    print(f"scoreboard: schema at version {available()[-1].version}")
    return 0


def _read_password() -> str:
    """Asked twice without echo on a terminal; the first line of stdin otherwise."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    password = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != password:
        raise SettingsError("password: the two entries differ")
    return password


async def _create_user(settings: Settings, args: argparse.Namespace) -> int:
    from scoreboard.api.services import open_database
    from scoreboard.auth.accounts import Accounts
    from scoreboard.auth.passwords import PasswordHasher

    password = _read_password()
    pool, _server = await open_database(settings)
    try:
        accounts = Accounts(pool, PasswordHasher(settings.bcrypt_rounds))
        user = await accounts.create(
            args.name, args.email, password, role="admin" if args.admin else "player"
        )
    finally:
        await pool.close()
    print(f"scoreboard: created {user.role} {user.username} ({user.id})")
    return 0


async def _describe_users(settings: Settings, args: argparse.Namespace) -> int:
    """`users list` and `users show NAME`: read-only, straight from PostgreSQL."""
    from scoreboard.api.services import open_database
    from scoreboard.auth.accounts import Accounts
    from scoreboard.auth.passwords import PasswordHasher
    from scoreboard.core.errors import UserNotFound

    if args.users_command == "list" and args.limit < 1:
        raise SettingsError("--limit: must be at least 1")
    pool, _server = await open_database(settings)
    try:
        accounts = Accounts(pool, PasswordHasher(settings.bcrypt_rounds))
        if args.users_command == "list":
            found = await accounts.accounts(
                role="admin" if args.admins else None,
                banned=True if args.banned else None,
                limit=args.limit,
            )
            rows = [("username", "id", "role", "banned", "created")] + [
                (a.username, a.id, a.role, "yes" if a.banned else "no", _when(a.created_at))
                for a in found
            ]
            widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
            for row in rows:
                cells = (value.ljust(width) for value, width in zip(row, widths, strict=True))
                print("  ".join(cells).rstrip())
            return 0
        account = await accounts.account(args.name)
    finally:
        await pool.close()
    if account is None:
        raise UserNotFound(f"no account named {args.name}")
    ban = "no" if not account.banned else f"yes ({account.banned_reason or 'no reason given'})"
    scores = ", ".join(f"{board} {score}" for board, score in account.scores) or "none"
    for label, value in (
        ("username", account.username),
        ("id", account.id),
        ("email", account.email),
        ("role", account.role),
        ("banned", ban),
        ("created", _when(account.created_at)),
        ("scores", scores),
    ):
        print(f"{label:<9} {value}")
    return 0


async def _named(accounts: Any, name: str) -> Any:
    from scoreboard.core.errors import UserNotFound

    user = await accounts.by_username(name)
    if user is None:
        raise UserNotFound(f"no account named {name}")
    return user


async def _change_account(settings: Settings, args: argparse.Namespace) -> int:
    """`users promote | demote | reset-password | reset-mfa NAME`: PostgreSQL only, each
    change in one transaction with its audit record (scoreboard/auth/operator.py)."""
    from scoreboard.api.services import open_database
    from scoreboard.auth.accounts import Accounts
    from scoreboard.auth.operator import Operator, reset_mfa, reset_password, set_role
    from scoreboard.auth.passwords import PasswordHasher

    operator = Operator.here(f"users {args.users_command}")
    password = _read_password() if args.users_command == "reset-password" else ""
    pool, _server = await open_database(settings)
    try:
        hasher = PasswordHasher(settings.bcrypt_rounds)
        user = await _named(Accounts(pool, hasher), args.name)
        if args.users_command == "reset-mfa":
            done = await reset_mfa(pool, user, operator)
            print(
                f"scoreboard: one-time passwords of {user.username} "
                + ("reset: it enrols afresh" if done else "were not on")
            )
            return 0
        if args.users_command != "reset-password":
            role = "admin" if args.users_command == "promote" else "player"
            changed = await set_role(pool, user, role, operator)
            what = "an admin" if role == "admin" else "a player"
            print(f"scoreboard: {user.username} is {'now' if changed else 'already'} {what}")
            if changed and role == "admin":
                print("  the admin routes take the tokens of their next login")
            return 0
        revoked = await reset_password(pool, hasher, user, password, operator)
    finally:
        await pool.close()
    print(f"scoreboard: new password for {user.username}; {len(revoked)} sessions ended")
    if revoked and settings.embedded:
        print(
            "  a running embedded server keeps accepting their access tokens until they"
            f" expire (at most {settings.access_token_ttl} s); their refresh tokens stop now"
        )
    elif revoked:
        await _revoke_in_redis(settings, revoked)
    return 0


async def _revoke_in_redis(settings: Settings, session_ids: list[str]) -> None:
    """Every server stops accepting these sessions' access tokens at once."""
    from scoreboard.auth.revocations import Revocations
    from scoreboard.auth.tokens import LEEWAY_SECONDS
    from scoreboard.storage.keys import Keys
    from scoreboard.storage.redis_client import connect_for

    redis = connect_for(settings)
    try:
        revocations = Revocations(
            redis, Keys.for_settings(settings), settings.access_token_ttl + LEEWAY_SECONDS
        )
        for session_id in session_ids:
            await revocations.revoke(session_id)
    finally:
        await redis.aclose()


async def _moderate(settings: Settings, args: argparse.Namespace) -> int:
    """`users ban | unban NAME`: the admin API's own path (PostgreSQL, then every
    board, the sessions, the audit trail), with the operator as the actor."""
    import dataclasses
    import secrets

    import msgspec

    from scoreboard.api.services import Services, open_database
    from scoreboard.auth.operator import Operator
    from scoreboard.boards.moderation import Meta, clean_reason
    from scoreboard.core.contract.requests import MaybeReason, WithReason
    from scoreboard.storage.redis_client import connect_for

    if settings.embedded:
        raise SettingsError(
            "REDIS_URL: in embedded mode the boards live inside `scoreboard serve`;"
            f" {args.users_command} through its API"
            f" (POST /admin/players/{{id}}/{args.users_command}), or set REDIS_URL and"
            " DATABASE_URL"
        )
    body = {} if args.reason is None else {"reason": args.reason}
    try:
        if args.users_command == "ban":
            reason = clean_reason(msgspec.convert(body, WithReason).reason)
        else:
            reason = clean_reason(msgspec.convert(body, MaybeReason).reason)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"--reason: {exc}") from None
    operator = Operator.here(f"users {args.users_command}")
    meta = Meta(admin_id="", ip="", user_agent=operator.command, operator=operator.name)
    # This process signs and checks no token: keys of its own stand in for the secrets.
    settings = dataclasses.replace(
        settings,
        jwt_secret=settings.jwt_secret or secrets.token_hex(32),
        jwt_refresh_secret=settings.jwt_refresh_secret or secrets.token_hex(32),
    )
    pool, _server = await open_database(settings)
    services = await Services.assemble(settings, connect_for(settings), pool)
    try:
        await services.catalog.refresh()
        user = await _named(services.accounts, args.name)
        if args.users_command == "ban":
            await services.admin.ban(user.id, reason, meta)
        else:
            await services.admin.unban(user.id, reason, meta)
    finally:
        await services.close()
    print(f"scoreboard: {user.username} is {args.users_command}ned on every board")
    return 0


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    try:
        import httpx

        from scoreboard.ops.demo import Demo, DemoError
    except ImportError:
        raise SettingsError(
            "the demo needs httpx, from the `embedded` extra: pip install 'scoreboard[embedded]'"
        ) from None
    if args.players < 1 or args.rate <= 0 or args.seconds < 0:
        raise SettingsError("--players, --rate: must be above 0; --seconds: 0 or more")
    admin = None
    if args.admin:
        import getpass

        prompt = f"Password of {args.admin}: "
        secret = getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline()
        admin = (args.admin, secret.rstrip("\r\n"))

    for noisy in ("httpx", "scoreboard.embedded"):  # not a line per request
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def say(line: str) -> None:
        print(line, flush=True)

    async def play() -> None:
        async with httpx.AsyncClient(timeout=10.0) as http:
            demo = Demo(
                http,
                settings,
                url=args.url,
                players=args.players,
                rate=args.rate,
                seconds=args.seconds,
                admin=admin,
                say=say,
            )
            await demo.run()

    say(f"scoreboard demo: playing on {args.url}")
    try:
        asyncio.run(play())
    except DemoError as exc:
        print(f"scoreboard demo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 0
    return 0


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


async def _sync(settings: Settings, args: argparse.Namespace) -> int:
    from scoreboard.api.services import open_database
    from scoreboard.core.gc_tuning import tune_for_service
    from scoreboard.storage.preflight import preflight, redacted
    from scoreboard.storage.redis_client import connect_for
    from scoreboard.sync import SyncFleet

    if settings.embedded:
        raise SettingsError(
            "REDIS_URL: the syncer runs inside `scoreboard serve` in embedded mode;"
            " set REDIS_URL and DATABASE_URL to run it on its own"
        )
    assert settings.redis_url
    await preflight(settings)
    tracing.configure(tracing.SYNCER)
    pool, _server = await open_database(settings)
    # The syncer's reads block for up to SCOREBOARD_SYNC_BLOCK_MS: its timeout is longer.
    redis = connect_for(settings, timeout=settings.sync_block_ms / 1000 + 1.0)
    syncer = SyncFleet(settings, redis, pool)
    tune_for_service()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, syncer.stop)
    print(
        f"scoreboard sync: started as consumer {syncer.consumer} (Redis"
        f" {redacted(settings.redis_url)}, PostgreSQL {redacted(settings.database_url or '')})",
        flush=True,
    )

    async def say_caught_up() -> None:
        await syncer.caught_up.wait()
        print(
            f"scoreboard sync: caught up: {len(syncer.syncers)} boards,"
            f" {syncer.committed_events} events persisted so far",
            flush=True,
        )

    announcing = asyncio.create_task(say_caught_up())
    try:
        await syncer.run(burst=args.burst)
    finally:
        announcing.cancel()
        await redis.aclose()
        await pool.close()
        tracing.shutdown()
    print(f"scoreboard sync: stopped after {syncer.committed_events} events", flush=True)
    return 0


@asynccontextmanager
async def _board_tools(
    settings: Settings, command: str, board: str = "global"
) -> AsyncIterator[_BoardTools]:
    from scoreboard.api.services import open_database
    from scoreboard.boards.rebuild import PeriodClock
    from scoreboard.storage.keys import BOARD_RE, Keys
    from scoreboard.storage.redis_client import connect_for
    from scoreboard.storage.scripts import Scripts

    if settings.embedded:
        raise SettingsError(
            f"REDIS_URL: in embedded mode `scoreboard serve` does this by itself; `{command}`"
            " needs REDIS_URL and DATABASE_URL"
        )
    assert settings.redis_url
    if not BOARD_RE.match(board):
        raise SettingsError(f"--board: {board!r} is not a board's name")
    pool, _server = await open_database(settings)
    redis = connect_for(settings, timeout=30.0)
    try:
        known = await pool.fetchval("SELECT 1 FROM boards WHERE name = $1", board)
        if known is None:
            raise SettingsError(f"--board: there is no board {board!r}")
        yield _BoardTools(
            redis,
            pool,
            Scripts(redis),
            Keys.for_settings(settings).board(board),
            PeriodClock.from_settings(settings),
        )
    finally:
        await redis.aclose()
        await pool.close()


@dataclass
class _BoardTools:
    redis: Any
    pool: Any
    scripts: Any
    board: Any
    clock: Any


async def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from scoreboard.boards.rebuild import rebuild_with_lock

    async with _board_tools(settings, "rebuild", args.board) as tools:
        report = await rebuild_with_lock(
            tools.redis, tools.pool, tools.scripts, tools.board, tools.clock
        )
    print(
        f"scoreboard rebuild: {report.players} players, {report.from_stream} newer from the"
        f" stream, {report.caught_up} caught up while rebuilding"
    )
    return 0


async def _reconcile(settings: Settings, args: argparse.Namespace) -> int:
    from scoreboard.boards.reconcile import reconcile

    async with _board_tools(settings, "reconcile", args.board) as tools:
        report = await reconcile(
            tools.redis,
            tools.pool,
            tools.scripts,
            tools.board,
            repair=not args.dry_run,
            clock=tools.clock,
        )
    if report.skipped:
        print(f"scoreboard reconcile: not run: {report.skipped}", file=sys.stderr)
        return EXIT_FAILED
    print(f"scoreboard reconcile: {report.players} players checked")
    for kind, count in sorted(report.differences.items()):
        print(f"  {kind}: {count}")
    for user_id, held, expected in report.examples:
        print(f"  player {user_id}: board {held}, PostgreSQL {expected}")
    if report.dead_letters:
        print(
            f"  {report.dead_letters} applied updates sit in the dead letters, not in"
            " PostgreSQL: the board keeps them"
        )
    if report.clean:
        print("  the board matches PostgreSQL")
    elif report.repaired:
        print("  repaired: the board was rebuilt from PostgreSQL")
    else:
        print("  not repaired (--dry-run)")
    return 0


def _dispatch(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "serve":
        return _serve(settings, args)
    if args.command == "migrate":
        return asyncio.run(_migrate(settings))
    if args.command == "users" and args.users_command == "create":
        return asyncio.run(_create_user(settings, args))
    if args.command == "users" and args.users_command in ("ban", "unban"):
        return asyncio.run(_moderate(settings, args))
    if args.command == "users" and args.users_command in (
        "promote",
        "demote",
        "reset-password",
        "reset-mfa",
    ):
        return asyncio.run(_change_account(settings, args))
    if args.command == "users":
        return asyncio.run(_describe_users(settings, args))
    if args.command == "demo":
        return _demo(settings, args)
    if args.command == "sync":
        return asyncio.run(_sync(settings, args))
    if args.command == "reconcile":
        return asyncio.run(_reconcile(settings, args))
    return asyncio.run(_rebuild(settings, args))


def _tls_certificate(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    names = args.names or ["localhost", "127.0.0.1", "::1"]
    if tls.self_signed(directory, names, replace=args.replace):
        written = f"{directory / tls.CERTIFICATE} and {directory / tls.KEY}"
        print(f"wrote {written} for {', '.join(names)}")
    else:
        print(f"kept the certificate in {directory} (--replace to make a new one)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "tls-cert":
        return _tls_certificate(args)
    try:
        settings = Settings.from_env(os.environ)
        tracing.exporters(os.environ)  # a tracing variable's mistake is one line too
        logs.configure(settings.log_format)
        for line in unknown_variables(os.environ):
            print(f"scoreboard: warning: {line}", file=sys.stderr)
        return _dispatch(settings, args)
    except SettingsError as exc:
        print(f"scoreboard: configuration error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except ScoreboardError as exc:
        print(f"scoreboard {args.command}: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
