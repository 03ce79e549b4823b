"""Prometheus metrics, with prometheus-client (one well-kept definition of the text
format, histograms and multiprocess aggregation instead of our own).

With `scoreboard serve --workers N` every worker writes its samples under
PROMETHEUS_MULTIPROC_DIR (`serve` makes one when it is unset) and `/metrics` adds them
up, so a scrape of any worker sees the whole server. Label values are bounded: route
names (the endpoint, never the raw path), status codes, error codes, script names.
What other processes know (the syncer's backlog, this process's live feeds) is read
at scrape time by a collector.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metric", "counter", "gauge", "render", "summary"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

HTTP_REQUESTS = Counter(
    "scoreboard_http_requests", "HTTP requests answered", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "scoreboard_http_request_duration_seconds",
    "Time to answer an HTTP request (until the response starts)",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter("scoreboard_errors", "Error answers by code and route", ["code", "route"])
SCORE_UPDATES = Counter(
    "scoreboard_score_updates",
    "Score updates by outcome (accepted, flagged, replayed or the error code)",
    ["outcome"],
)
HASHES_SHED = Counter(
    "scoreboard_password_hashes_shed",
    "Logins, registrations and password checks refused with 503: no hashing slot in time",
    ["reason"],
)
ACTION_TOKENS = Counter("scoreboard_action_tokens_issued", "Action tokens issued")
LOGIN_FAILURES = Counter("scoreboard_login_failures", "Logins refused (bad name or password)")
RATE_LIMITED = Counter("scoreboard_rate_limited", "Requests refused by a rate limit", ["rule"])
SCRIPT_LATENCY = Histogram(
    "scoreboard_redis_script_duration_seconds",
    "Round trip of each Redis script call",
    ["script"],
    buckets=LATENCY_BUCKETS,
)


@functools.cache
def _request_children(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The labelled children of one route, method and status, looked up once (a
    `labels()` call per request costs more than the sample itself)."""
    return HTTP_LATENCY.labels(route, method), HTTP_REQUESTS.labels(route, method, str(status))


@functools.cache
def script_latency(script: str) -> Any:
    """The latency child of one script, looked up once."""
    return SCRIPT_LATENCY.labels(script)


def route_of(scope: Scope) -> str:
    endpoint = scope.get("endpoint")
    return getattr(endpoint, "__name__", "unmatched") if endpoint is not None else "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request by route, method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                latency, requests = _request_children(
                    route_of(scope), scope["method"], message["status"]
                )
                latency.observe(time.perf_counter() - started)
                requests.inc()
            await send(message)

        await self.app(scope, receive, timed)


def count_error(code: str, scope: Scope) -> None:
    route = route_of(scope)
    ERRORS.labels(code, route).inc()
    if route == "update":
        SCORE_UPDATES.labels(code).inc()
    if code == "INVALID_CREDENTIALS":
        LOGIN_FAILURES.inc()
    elif code == "RATE_LIMIT_EXCEEDED":
        RATE_LIMITED.labels(route).inc()


class Snapshot:
    """Values read once per scrape (from Redis or this process), as metric families."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def gauge(name: str, help_text: str, value: float, labels: dict[str, str]) -> Metric:
    return gauges(name, help_text, {tuple(labels.values()): value}, list(labels))


def gauges(
    name: str, help_text: str, values: dict[tuple[str, ...], float], labels: list[str]
) -> Metric:
    """One gauge family with a sample per label set (per board, for instance)."""
    return _filled(GaugeMetricFamily(name, help_text, labels=labels), values)


def counter(
    name: str, help_text: str, values: dict[tuple[str, ...], float], labels: list[str]
) -> Metric:
    return _filled(CounterMetricFamily(name, help_text, labels=labels), values)


def _filled(family: Any, values: dict[tuple[str, ...], float]) -> Metric:
    for label_values, value in values.items():
        family.add_metric(list(label_values), value)
    return family  # type: ignore[no-any-return]


class _Together:
    def __init__(self, *sources: Any) -> None:
        self._sources = sources

    def collect(self) -> Iterable[Metric]:
        for source in self._sources:
            yield from source.collect()


def summary(name: str, help_text: str, count: int, total: float, labels: dict[str, str]) -> Metric:
    return summaries(name, help_text, {tuple(labels.values()): (count, total)}, list(labels))


def summaries(
    name: str,
    help_text: str,
    values: dict[tuple[str, ...], tuple[int, float]],
    labels: list[str],
) -> Metric:
    family = SummaryMetricFamily(name, help_text, labels=labels)
    for label_values, (count, total) in values.items():
        family.add_metric(list(label_values), count_value=count, sum_value=total)
    return family


def render(extra: list[Metric]) -> bytes:
    """The exposition text: this process's samples (every worker's, when they share a
    PROMETHEUS_MULTIPROC_DIR) and the families read for this scrape."""
    own: Any = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own = MultiProcessCollector(None)  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Together(own, Snapshot(extra)))
    data: bytes = generate_latest(registry)
    return data
