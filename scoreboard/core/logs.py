"""Logs: one JSON object per line (time, level, logger, message, the request's id, the
trace and span ids when tracing is on, and any fields passed as `extra`), or a readable
line when stderr is a terminal. The same configuration drives uvicorn's loggers, so
every line of a process has one shape. `SCOREBOARD_LOG_FORMAT` picks `json`, `text` or
`auto` (text on a terminal)."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import time
from contextvars import ContextVar
from typing import Any

from scoreboard.core import tracing

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        traced = tracing.log_ids()
        if traced is not None:
            entry["trace_id"], entry["span_id"] = traced
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = REQUEST_ID.get()
        if request_id:
            line = f"{line} [{request_id}]"
        traced = tracing.log_ids()
        return f"{line} trace={traced[0]}" if traced else line


def chosen(setting: str) -> str:
    """'json' or 'text' for a SCOREBOARD_LOG_FORMAT of json, text or auto."""
    if setting != "auto":
        return setting
    return "text" if sys.stderr.isatty() else "json"


def config(setting: str, level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for this process and uvicorn's loggers."""
    formatter = JsonFormatter if chosen(setting) == "json" else TextFormatter
    handler = {"class": "logging.StreamHandler", "formatter": "line", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"()": formatter}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            name: {"handlers": [], "level": level, "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure(setting: str) -> None:
    logging.config.dictConfig(config(setting))
