"""The command line's words: every command, its options with their defaults, and the
environment variables it reads (docs/configuration.md says what each one means)."""

from __future__ import annotations

import argparse

from scoreboard import __version__

_STORES = (
    "REDIS_URL and DATABASE_URL (both, or neither for embedded mode with its data in"
    " SCOREBOARD_DATA_DIR)"
)
_READS = {
    "serve": f"{_STORES}, JWT_SECRET, JWT_REFRESH_SECRET, and every SCOREBOARD_* setting",
    "sync": f"{_STORES}, SCOREBOARD_REDIS_PREFIX, SCOREBOARD_SYNC_*,"
    " SCOREBOARD_RECONCILE_INTERVAL_MS, SCOREBOARD_ALLOW_EVICTION",
    "migrate": "DATABASE_URL (or SCOREBOARD_DATA_DIR in embedded mode)",
    "rebuild": "REDIS_URL, DATABASE_URL, SCOREBOARD_REDIS_PREFIX",
    "reconcile": "REDIS_URL, DATABASE_URL, SCOREBOARD_REDIS_PREFIX",
    "create": "DATABASE_URL (or SCOREBOARD_DATA_DIR in embedded mode), SCOREBOARD_BCRYPT_ROUNDS",
    "list": "DATABASE_URL (or SCOREBOARD_DATA_DIR in embedded mode)",
    "show": "DATABASE_URL (or SCOREBOARD_DATA_DIR in embedded mode)",
    "demo": "SCOREBOARD_DATA_DIR, and for a server on this machine without --admin,"
    " DATABASE_URL (or SCOREBOARD_DATA_DIR in embedded mode) and SCOREBOARD_BCRYPT_ROUNDS",
    "promote": "DATABASE_URL (or SCOREBOARD_DATA_DIR in embedded mode)",
    "demote": "DATABASE_URL (or SCOREBOARD_DATA_DIR in embedded mode)",
    "reset-mfa": "DATABASE_URL (or SCOREBOARD_DATA_DIR in embedded mode)",
    "reset-password": "DATABASE_URL (or SCOREBOARD_DATA_DIR in embedded mode),"
    " SCOREBOARD_BCRYPT_ROUNDS, and REDIS_URL with SCOREBOARD_REDIS_PREFIX to end the"
    " sessions' access tokens at once",
    "ban": "REDIS_URL, DATABASE_URL, SCOREBOARD_REDIS_PREFIX, SCOREBOARD_REDIS_CLUSTER",
    "unban": "REDIS_URL, DATABASE_URL, SCOREBOARD_REDIS_PREFIX, SCOREBOARD_REDIS_CLUSTER",
    "tls-cert": "none",
}


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=f"{summary}.\n\n{description}",
        epilog=f"environment: {_READS[name]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="scoreboard", description="A Redis-first live leaderboard service."
    )
    top.add_argument("--version", action="version", version=f"scoreboard {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = _command(
        commands,
        "serve",
        "run the HTTP and WebSocket API",
        "Applies migrations first (safe when several start at once). With nothing\n"
        "configured it runs embedded: in-process Redis, embedded PostgreSQL, syncer inside.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes; above 1 needs real services (default: %(default)s)",
    )
    serve.add_argument("--access-log", action="store_true", help="log every request (default: off)")
    sync = _command(
        commands,
        "sync",
        "run the write-behind syncer",
        "Persists the board's event stream to PostgreSQL, exactly once. Stops on SIGTERM or\n"
        "SIGINT after the batch in flight; fails at start when a store is unreachable,\n"
        "then rides out outages of either.",
    )
    sync.add_argument("--burst", action="store_true", help="stop once the stream is drained")
    _command(commands, "migrate", "apply database migrations", "Then exits.")
    rebuild = _command(
        commands,
        "rebuild",
        "rebuild the Redis board from PostgreSQL",
        "PostgreSQL's totals plus the events not yet persisted; readers never see an empty\n"
        "board, and every running server reads the new one at once.",
    )
    rebuild.add_argument("--board", default="global", help="the board (default: global)")
    reconcile = _command(
        commands,
        "reconcile",
        "compare the Redis board with PostgreSQL and repair it",
        "Prints every difference; PostgreSQL plus the unsynced stream wins.",
    )
    reconcile.add_argument(
        "--dry-run", action="store_true", help="report the differences, repair nothing"
    )
    reconcile.add_argument("--board", default="global", help="the board (default: global)")
    demo = _command(
        commands,
        "demo",
        "play a demo on a running server",
        "Players (and one bot that cheats) register, log in and play rounds with plausible\n"
        "telemetry on the board 'demo' (daily, weekly and monthly periods), so the live\n"
        "page moves. It creates the board as an admin: --admin NAME (its password asked,\n"
        "or the first line of stdin), or, for a server on this machine, an account\n"
        "'demo-admin' it makes in this machine's database. Their passwords are kept in\n"
        "SCOREBOARD_DATA_DIR/demo.json, so another run plays the same players.",
    )
    demo.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="the server (default: http://127.0.0.1:8000, where `make serve` listens)",
    )
    demo.add_argument("--players", type=int, default=8, help="how many players (default: 8)")
    demo.add_argument(
        "--rate", type=float, default=1.0, help="rounds a second, all players (default: 1)"
    )
    demo.add_argument(
        "--seconds", type=float, default=0, help="how long to play (default: 0, until Ctrl-C)"
    )
    demo.add_argument("--admin", help="an admin's username, to create the board")
    tls = _command(
        commands,
        "tls-cert",
        "make a self-signed certificate for HTTPS",
        "Writes fullchain.pem and privkey.pem (owner-only) into DIRECTORY, for local use:\n"
        "the compose deployment's nginx gets one this way at its first start. A pair\n"
        "already there is kept unless --replace.",
    )
    tls.add_argument("directory", metavar="DIRECTORY", help="where to write the pair")
    tls.add_argument(
        "--name",
        action="append",
        dest="names",
        help="a host name or address it is for; repeatable (default: localhost, 127.0.0.1, ::1)",
    )
    tls.add_argument("--replace", action="store_true", help="replace a pair already there")
    users = commands.add_parser("users", help="manage accounts", description="Manage accounts.")
    users_commands = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    create = _command(
        users_commands,
        "create",
        "create an account",
        "Asks for the password (twice, not echoed) on a terminal; otherwise reads it from\n"
        "the first line of standard input.",
    )
    create.add_argument("name", help="the username (3-32 letters, digits, _ . -)")
    create.add_argument("--email", required=True, help="the account's email address")
    create.add_argument("--admin", action="store_true", help="give the account the admin role")
    listing = _command(
        users_commands, "list", "list accounts", "The newest accounts first, one a line."
    )
    listing.add_argument("--admins", action="store_true", help="admins only")
    listing.add_argument("--banned", action="store_true", help="banned accounts only")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default: 100)")
    show = _command(
        users_commands,
        "show",
        "show one account",
        "Its id, email, role, ban (with its reason) and all-time total on each board.",
    )
    show.add_argument("name", help="the username")
    for name, summary, description in (
        ("promote", "give an account the admin role", "Audited with you as the operator."),
        (
            "demote",
            "take the admin role away",
            "The admin routes refuse the account at once. Audited with you as the operator.",
        ),
        (
            "reset-mfa",
            "turn an account's one-time passwords off",
            "Its secret and recovery codes are deleted; it enrols afresh (an admin, before\n"
            "the admin routes while SCOREBOARD_ADMIN_MFA is required). Audited with you as\n"
            "the operator.",
        ),
        (
            "reset-password",
            "set a new password and end every session",
            "Asks for the password (twice, not echoed) on a terminal; otherwise reads it\n"
            "from the first line of standard input. Audited with you as the operator.",
        ),
    ):
        changed = _command(users_commands, name, summary, description)
        changed.add_argument("name", help="the username")
    ban = _command(
        users_commands,
        "ban",
        "ban a player from every board",
        "Off every ranking and live feed at once, every session ended, no login or update\n"
        "until unbanned; the score is kept. Needs REDIS_URL and DATABASE_URL.",
    )
    ban.add_argument("name", help="the username")
    ban.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    unban = _command(
        users_commands,
        "unban",
        "lift a ban",
        "Back with the same score and tie position. Needs REDIS_URL and DATABASE_URL.",
    )
    unban.add_argument("name", help="the username")
    unban.add_argument("--reason", help="why (kept in the audit trail)")
    return top
