"""The moment a server process starts shutting down, for what must end before it does.

uvicorn asks every open connection to shut down when it receives SIGTERM; the protocols
of `scoreboard serve` (`http_protocol`, `ws_protocol`) call `begin_shutdown` first, in
every worker, and the callbacks registered here run once: the live feeds end their
server-sent-event streams cleanly so that clients reconnect to another server."""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("scoreboard.lifecycle")

_callbacks: list[Callable[[], None]] = []
_begun = False


def on_shutdown(callback: Callable[[], None]) -> None:
    _callbacks.append(callback)


def begin_shutdown() -> None:
    global _begun
    if _begun:
        return
    _begun = True
    for callback in _callbacks:
        try:
            callback()
        except Exception:
            log.exception("a shutdown callback failed")
