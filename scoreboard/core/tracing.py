"""Distributed traces with OpenTelemetry, off unless `OTEL_TRACES_EXPORTER` names an
exporter. Configured by the standard variables only:

- `OTEL_TRACES_EXPORTER`: `otlp` (OTLP over HTTP/protobuf), `console` (one JSON span
  a time on stdout), or both comma-separated; unset or `none`: off.
- `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), headers,
  timeout and compression: read by the exporter itself.
- `OTEL_SERVICE_NAME` (default `scoreboard` for servers, `scoreboard-syncer` for the
  syncer), `OTEL_RESOURCE_ATTRIBUTES`.
- `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` (default: every trace, or as the
  caller's `traceparent` decided), `OTEL_BSP_*` for the batching of exports.

On, it traces each request (the ASGI server span), every Redis command and PostgreSQL
statement (their instrumentations, with the values left out), the score script's call
and each batch of the syncer, and a score update's trace continues in the syncer: the
request's trace context rides in its stream event, and the span that persists the event
is a child of the request's span (the batch's span links to every request in it).
Log lines written inside a span carry its trace and span ids.

Off, nothing is imported and every helper here is a constant: `make bench` measures the
difference (bench/TRACING.md)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from scoreboard.core.errors import SettingsError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Link, Tracer
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    from starlette.middleware import Middleware
    from starlette.types import ASGIApp

log = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console")
SERVER = "scoreboard"
SYNCER = "scoreboard-syncer"
TRACE_FIELD = "trace"  # the stream event's field with the request's trace context

_OFF: AbstractContextManager[Any] = contextlib.nullcontext()
_provider: TracerProvider | None = None
_tracer: Tracer | None = None
# W3C trace context, read from requests and stream events and written into events
_propagator: TraceContextTextMapPropagator | None = None


def enabled() -> bool:
    return _tracer is not None


def exporters(environ: Mapping[str, str]) -> list[str]:
    """The exporters the environment asks for; [] when tracing is off. A name this
    version does not know is a configuration error, said in one line."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    ]
    names = [name for name in names if name != "none"]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise SettingsError(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not one of {', '.join(EXPORTERS)}"
            " or none"
        )
    protocol = environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if "otlp" in names and protocol not in ("", "http/protobuf"):
        raise SettingsError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported (got {protocol!r});"
            " point the endpoint at the collector's OTLP/HTTP port (4318)"
        )
    return names


def configure(process: str, environ: Mapping[str, str] | None = None) -> bool:
    """Sets tracing up for this process (`SERVER` or `SYNCER`) when the environment
    asks for it; once per process, later calls do nothing. Returns whether it is on."""
    global _provider, _tracer, _propagator
    if _provider is not None:
        return True
    environ = os.environ if environ is None else environ
    names = exporters(environ)
    if not names:
        return False
    from opentelemetry import trace
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    attributes: dict[str, str] = {"scoreboard.process": process}
    if not environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = process
    provider = TracerProvider(resource=Resource.create(attributes))
    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if "console" in names:
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    RedisInstrumentor().instrument(tracer_provider=provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    _provider, _tracer = provider, provider.get_tracer("scoreboard")
    _propagator = TraceContextTextMapPropagator()
    log.info("tracing on: exporting to %s", ", ".join(names))
    return True


FLUSH_TIMEOUT_MS = 2000


def shutdown() -> None:
    """Exports what is still batched, for the end of the process; a collector that does
    not answer holds the stop up for at most two seconds."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=FLUSH_TIMEOUT_MS)


def middleware() -> list[Middleware]:
    """The app's outermost middleware when tracing is on (none when off): each request
    in a server span (`_ServerSpans`)."""
    if _tracer is None or _propagator is None:
        return []
    from starlette.middleware import Middleware

    return [Middleware(_ServerSpans, tracer=_tracer, propagator=_propagator)]


class _ServerSpans:
    """A server span per request or WebSocket, continuing the caller's `traceparent`.
    Named by the method and route template once routed, as the response starts (the
    path holds ids, the template does not): `POST /v1/scores/update`; by the method
    alone for a path no route took. It ends with the response (an SSE feed's or a
    WebSocket's span lasts as long as it does).

    Written here rather than taken from the ASGI instrumentation package: that one
    decodes every header several times and gathers a dozen attributes for each request
    before the sampler has a say, which cost an update 1.35x its CPU at one trace in a
    hundred (bench/TRACING.md); this one looks at one header, and sets attributes only
    on a span that is recorded."""

    def __init__(
        self, app: ASGIApp, tracer: Tracer, propagator: TraceContextTextMapPropagator
    ) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.app = app
        self._tracer = tracer
        self._extract = propagator.extract
        self._server = SpanKind.SERVER
        self._failed = Status(StatusCode.ERROR)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        method = scope.get("method")
        with self._tracer.start_as_current_span(
            method or "websocket", context=self._parent(scope), kind=self._server
        ) as span:
            if not span.is_recording():
                await self.app(scope, receive, send)
                return

            async def traced_send(message: Any) -> None:
                if message["type"] in ("http.response.start", "websocket.accept"):
                    self._answered(span, scope, message)
                await send(message)

            if method:
                span.set_attribute("http.request.method", method)
            span.set_attribute("url.path", scope["path"])
            await self.app(scope, receive, traced_send)

    def _parent(self, scope: Any) -> Any:
        """The caller's trace context from its `traceparent` header; None without one."""
        for name, value in scope["headers"]:
            if name == b"traceparent":
                return self._extract({"traceparent": value.decode("latin-1")})
        return None

    def _answered(self, span: Any, scope: Any, message: Any) -> None:
        route = getattr(scope.get("route"), "path", None)
        if route is not None:
            template = scope.get("root_path", "") + route
            method = scope.get("method")
            span.update_name(f"{method} {template}" if method else template)
            span.set_attribute("http.route", template)
        status = message.get("status")
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(self._failed)


def span(
    name: str, attributes: Mapping[str, str | int] | None = None
) -> AbstractContextManager[Any]:
    """A span around a block (the current one's child); a shared no-op when off."""
    if _tracer is None:
        return _OFF
    return _tracer.start_as_current_span(name, attributes=attributes)


def traceparent() -> str:
    """The current span's context as a W3C `traceparent`, for a stream event; '' when
    off or when the trace is not sampled (nothing downstream would record it)."""
    if _propagator is None:
        return ""
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().trace_flags.sampled:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)  # nothing for an invalid context
    return carrier.get("traceparent", "")


def log_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the span the current code runs in, for log lines."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


@contextlib.contextmanager
def persisting(traced: Sequence[tuple[str, str]], events: int) -> Iterator[None]:
    """Around the syncer's commit of a batch of `events`, `traced` being (event id,
    traceparent) of those whose request was traced: a span for the batch, linked to
    each request, and when it ends, one span per traced event in its request's trace
    (a child of the request's span) covering the commit."""
    if _tracer is None or _propagator is None:
        yield
        return
    from opentelemetry import trace

    parents = [
        (event_id, _propagator.extract({"traceparent": parent})) for event_id, parent in traced
    ]
    links: list[Link] = []
    for _, parent in parents:
        remote = trace.get_current_span(parent).get_span_context()
        if remote.is_valid:
            links.append(trace.Link(remote))
    with _tracer.start_as_current_span(
        "sync batch", attributes={"scoreboard.events": events}, links=links
    ) as batch:
        yield
    # the SDK's span keeps its times (the API's type does not declare them)
    started, ended = getattr(batch, "start_time", None), getattr(batch, "end_time", None)
    for event_id, parent in parents:
        child = _tracer.start_span(
            "persist score event",
            context=parent,
            links=[trace.Link(batch.get_span_context())],
            attributes={"scoreboard.event_id": event_id},
            start_time=started,
        )
        child.end(end_time=ended)
