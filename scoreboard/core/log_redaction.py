"""No token in any log line: uvicorn logs every WebSocket handshake, and every request
when the access log is on, with the query string, where the WebSocket's access token
travels (`/ws/leaderboard?token=eyJ…`). A filter on its loggers keeps the path and
drops the query."""

from __future__ import annotations

import logging

# The position of the path in each of uvicorn's record formats that carries one.
_PATH_ARG = {
    '%s - "WebSocket %s" [accepted]': 1,
    '%s - "WebSocket %s" 403': 1,
    '%s - "WebSocket %s" %d': 1,
    '%s - "%s %s HTTP/%s" %d': 2,
}


class QueryRedactor(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        index = _PATH_ARG.get(str(record.msg))
        if index is not None and isinstance(record.args, tuple) and len(record.args) > index:
            path = record.args[index]
            if isinstance(path, str) and "?" in path:
                args = list(record.args)
                args[index] = path.split("?", 1)[0] + "?…"
                record.args = tuple(args)
        return True


def redact_server_logs() -> None:
    """Install the filter on uvicorn's loggers (once; after uvicorn configured them)."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryRedactor) for f in logger.filters):
            logger.addFilter(QueryRedactor())
