"""Traces: off unless asked for; on, one score update is one trace from the server's
request through the score script and Redis to the syncer's PostgreSQL commit, collected
by an OTLP receiver of the test's own; the console exporter prints spans; log lines
carry the trace id; a mistaken variable is one line."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider

from scoreboard.core import logs, tracing
from scoreboard.core.errors import SettingsError
from scoreboard.core.settings import Settings
from scoreboard.storage.keys import Keys
from tests.auth_helpers import bearer, issue_token, new_player, submit
from tests.commands import scoreboard_command
from tests.conftest import server_env, serving
from tests.deployment import FAST_SYNC, SyncerProcess
from tests.otlp_receiver import ReceivedSpan, otlp_receiver


def test_tracing_is_off_unless_an_exporter_is_named() -> None:
    assert tracing.exporters({}) == []
    assert tracing.exporters({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert tracing.exporters({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) == []
    assert tracing.exporters({"OTEL_TRACES_EXPORTER": "otlp, console"}) == ["otlp", "console"]
    # off, the helpers cost nothing: one shared no-op, no trace context for the event
    assert not tracing.enabled()
    assert tracing.span("x") is tracing.span("y")
    assert tracing.traceparent() == "" and tracing.log_ids() is None and tracing.middleware() == []


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER: jaeger is not one of"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported",
        ),
    ],
)
def test_a_mistaken_tracing_variable_is_one_line(
    environ: dict[str, str], said: str, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match=said):
        tracing.exporters(environ)
    result = scoreboard_command(["serve"], server_env(settings, **environ), tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"scoreboard: configuration error: {said}")


def test_log_lines_carry_the_trace_and_span_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = TracerProvider()  # a private one: the process's tracing stays off
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    record = logging.LogRecord("scoreboard.test", logging.INFO, __file__, 1, "hello", None, None)
    with provider.get_tracer("test").start_as_current_span("work") as span:
        line = json.loads(logs.JsonFormatter().format(record))
        text = logs.TextFormatter().format(record)
    context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    assert text.endswith(f"trace={context.trace_id:032x}")
    outside = json.loads(logs.JsonFormatter().format(record))
    assert "trace_id" not in outside


CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


async def test_a_score_update_is_one_trace_from_the_request_to_postgresql(
    settings: Settings, own_database: str, tmp_path: Path
) -> None:
    with otlp_receiver() as receiver:
        env = server_env(
            dataclasses.replace(settings, database_url=own_database),
            **FAST_SYNC,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_BSP_SCHEDULE_DELAY="100",
            SCOREBOARD_LOG_FORMAT="json",
        )
        syncer = SyncerProcess(env, tmp_path)
        try:
            with serving(env, tmp_path, access_log=True) as (server,):
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                    player = await new_player(http)
                    # the game client's own trace, continued by the server
                    updated = await http.post(
                        "/v1/scores/update",
                        json={"score_increase": 7},
                        headers={
                            **bearer(player["access_token"]),
                            "X-Action-Token": await issue_token(http, player["access_token"]),
                            "traceparent": f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01",
                        },
                    )
                    assert updated.status_code == 200, updated.text
                spans = receiver.wait_for(lambda got: bool(_named(got, "persist score event")))
                server_log = server.log_path.read_text()
        finally:
            syncer.stop()
    (request,) = _named(spans, "POST /v1/scores/update")
    assert request.service == tracing.SERVER and request.trace_id == CLIENT_TRACE
    assert request.parent_id == "00f067aa0ba902b7"
    assert request.attributes["http.route"] == "/v1/scores/update"
    assert request.attributes["http.response.status_code"] == 200
    one_trace = [span for span in spans if span.trace_id == request.trace_id]
    by_id = {span.span_id: span for span in one_trace}
    (script,) = _named(one_trace, "score script")
    assert by_id[script.parent_id] is request
    assert script.attributes["scoreboard.board"] == "global"
    # the script goes through the service's own pipelined connection, which the hand-
    # placed span stands for; the Redis instrumentation sees the client's commands,
    # without their values (arguments hold addresses and user agents)
    commands = [s for s in spans if s.attributes.get("db.system") == "redis"]
    assert commands
    assert not [s for s in spans if player["username"] in str(s.attributes)]
    # the syncer's span that persisted the event is in the request's trace
    (persisted,) = _named(one_trace, "persist score event")
    assert persisted.service == tracing.SYNCER and by_id[persisted.parent_id] is request
    conn = await asyncpg.connect(own_database)
    try:
        event_ids = await conn.fetch(
            "SELECT event_id::text FROM scores WHERE user_id = $1", player["user_id"]
        )
    finally:
        await conn.close()
    assert [row["event_id"] for row in event_ids] == [persisted.attributes["scoreboard.event_id"]]
    # ...and the batch's own span links to the request, with PostgreSQL's statements
    # under it
    (batch,) = [s for s in _named(spans, "sync batch") if request.trace_id in s.links]
    statements = [s for s in spans if s.trace_id == batch.trace_id and s is not batch]
    assert statements and all(s.service == tracing.SYNCER for s in statements)
    assert any("INSERT" in s.name or "COPY" in s.name or "SELECT" in s.name for s in statements)
    # the request's log line carries its trace id
    access = [
        json.loads(line)
        for line in server_log.splitlines()
        if line.startswith("{") and "/v1/scores/update" in line
    ]
    assert [entry.get("trace_id") for entry in access] == [request.trace_id]


async def test_the_console_exporter_prints_the_syncers_spans(
    settings: Settings, own_database: str, tmp_path: Path
) -> None:
    untraced = server_env(dataclasses.replace(settings, database_url=own_database), **FAST_SYNC)
    env = {**untraced, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "scores-test"}
    with serving(untraced, tmp_path) as (server,):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            player = await new_player(http)
            assert (await submit(http, player, 3)).status_code == 200
    result = scoreboard_command(["sync", "--burst"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    printed = result.stdout
    assert '"name": "sync batch"' in printed
    assert '"service.name": "scores-test"' in printed


async def test_an_unsampled_request_leaves_no_trace_in_its_event(
    settings: Settings, tmp_path: Path
) -> None:
    with otlp_receiver() as receiver:
        env = server_env(
            settings,
            **FAST_SYNC,
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_TRACES_SAMPLER="always_off",
        )
        with serving(env, tmp_path) as (server,):
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                player = await new_player(http)
                assert (await submit(http, player, 4)).status_code == 200
        client = redis.Redis.from_url(settings.redis_url or "")
        try:
            stream = Keys.for_settings(settings).board("global").events
            entries = client.xrange(stream)
        finally:
            client.close()
    mine = [fields for _, fields in entries if fields[b"user_id"] == player["user_id"].encode()]
    assert len(mine) == 1 and b"trace" not in mine[0]
    assert receiver.spans == []
