"""OpenTelemetry: a span per request with its ids (never a token or body),
spans for Globus Auth and store calls in the same trace, metrics; nothing at
all when OpenTelemetry is missing or not configured. Recorded with the SDK's
in-memory exporters, on both faces."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from aptools import MemoryStore
from aptools.logjson import JSONFormatter
from aptools.telemetry import build, traceparent
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import MakeClient
from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    Relay,
    eventually,
    require_server,
    schema_fixture,
    through,
)

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind


class Recorded:
    """An SDK tracer and meter provider of the test's own, in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def providers(self) -> dict[str, Any]:
        return {
            "tracer_provider": self.tracer_provider,
            "meter_provider": self.meter_provider,
        }

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    made = Recorded()
    yield made
    made.tracer_provider.shutdown()
    made.meter_provider.shutdown()


def _everything(spans: list[ReadableSpan]) -> str:
    return json.dumps(
        [{"name": s.name, **{k: str(v) for k, v in (s.attributes or {}).items()}}
         for s in spans]
    )  # fmt: skip


def test_a_span_per_request_with_its_ids_and_children(
    make: MakeClient, alice: FakeIdentity, recorded: Recorded
) -> None:
    _, client = make(**recorded.providers())
    ran = client.run(alice, {"input_string": "private words"}, "req-7")
    assert ran.status_code == 202
    action_id = ran.json["action_id"]
    (request,) = recorded.named("POST /test/run")
    assert request.kind == SpanKind.SERVER
    attributes = dict(request.attributes or {})
    assert attributes == {
        **attributes,
        "http.request.method": "POST",
        "http.route": "/test/run",
        "http.response.status_code": 202,
        "aptools.operation": "run",
        "aptools.action_id": action_id,
        "aptools.request_id": "req-7",
        "enduser.id": alice.id,
    }
    trace_id = request.context.trace_id
    (introspect,) = recorded.named("globus_auth introspect")
    assert introspect.kind == SpanKind.CLIENT
    stores = [s for s in recorded.finished() if s.name.startswith("aptools.store ")]
    assert {s.name for s in stores} >= {"aptools.store reserve", "aptools.store create"}
    for child in [introspect, *stores]:
        assert child.context.trace_id == trace_id
        assert child.parent is not None
        assert child.parent.span_id == request.context.span_id
    everything = _everything(recorded.finished())
    assert alice.token not in everything and "private words" not in everything


def test_the_callers_trace_goes_on_and_failures_are_errors(
    make: MakeClient, alice: FakeIdentity, recorded: Recorded
) -> None:
    _, client = make(**recorded.providers())
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    got = client.call("GET", "/actions/nope", alice, headers={"traceparent": parent})
    assert got.status_code == 404
    (span,) = recorded.named("GET /test/actions/{action_id}")
    assert format(span.context.trace_id, "032x") == parent.split("-")[1]
    assert (
        span.parent is not None
        and format(span.parent.span_id, "016x") == (parent.split("-")[2])
    )
    client.call("GET", "/nothing/here/at/all", headers={"traceparent": "junk\n"})
    (unrouted,) = recorded.named("GET")
    assert unrouted.parent is None  # a malformed traceparent starts a new trace
    assert "http.route" not in (unrouted.attributes or {})


def test_metrics_by_operation_and_status_and_globus_auth(
    make: MakeClient, alice: FakeIdentity, auth: FakeGlobusAuth, recorded: Recorded
) -> None:
    _, client = make(**recorded.providers())
    for n in range(3):
        assert client.run(alice, {"input_string": "x"}, f"r{n}").status_code == 202
    assert client.call("GET", "/actions/nope", alice).status_code == 404
    by: dict[tuple[str, int], int] = {}
    for point in recorded.points("http.server.request.duration"):
        labels = dict(point.attributes)
        key = (labels.get("aptools.operation"), labels["http.response.status_code"])
        by[key] = by.get(key, 0) + point.count
    assert by[("run", 202)] == 3 and by[("status", 404)] == 1
    (auth_time,) = recorded.points("aptools.globus_auth.duration")
    assert dict(auth_time.attributes) == {"aptools.globus_auth.call": "introspect"}
    assert auth_time.count == 1  # one introspection: the token is cached after
    auth.fail(500)
    bob = auth.identity("bob@example.org")  # a token not yet cached
    assert client.call("GET", "/actions/nope", bob).status_code in (502, 503)
    (errors,) = recorded.points("aptools.globus_auth.errors")
    assert errors.value == 1
    assert dict(errors.attributes)["aptools.globus_auth.call"] == "introspect"
    failed = recorded.named("globus_auth introspect")[-1]
    assert not failed.status.is_ok


@pytest.fixture
def relay() -> Iterator[Relay]:
    made = Relay()
    yield made
    made.cut()


def test_store_unavailability_is_counted(
    make: MakeClient, alice: FakeIdentity, relay: Relay, schema: str,
    recorded: Recorded,
) -> None:  # fmt: skip
    from aptools.store.postgresql import PostgreSQLStore

    url = through(relay, schema, pool_timeout=1, connect_timeout=1)
    root = PostgreSQLStore(url)
    provider, client = make(store=root, **recorded.providers())
    assert client.run(alice, {"input_string": "x"}, "r1").status_code == 202
    relay.cut()
    assert client.run(alice, {"input_string": "x"}, "r2").status_code == 503
    assert client.call("GET", "/ready").status_code == 503
    counted = {
        dict(p.attributes)["db.operation.name"]: p.value
        for p in recorded.points("aptools.store.unavailable")
    }
    relay.mend()
    provider.store.close()
    root.close()
    assert counted == {"reserve": 1, "ready": 1}


def test_json_log_records_carry_the_trace_id(
    make: MakeClient, alice: FakeIdentity, recorded: Recorded
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    access = logging.getLogger("aptools.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        _, client = make(**recorded.providers())
        client.run(alice, {"input_string": "x"})
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    (record,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    (span,) = recorded.named("POST /test/run")
    assert record["trace_id"] == format(span.context.trace_id, "032x")
    assert record["span_id"] == format(span.context.span_id, "016x")


def test_a_job_span_joins_the_run_requests_trace(recorded: Recorded) -> None:
    telemetry = build(**recorded.providers())
    assert telemetry is not None
    tracer = recorded.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("run request") as run:
        carrier = traceparent()
    assert carrier is not None
    # Later, in another process: only the carrier went with the job.
    with telemetry.job_span(carrier, "action-1"):
        pass
    (job,) = recorded.named("aptools job")
    assert job.context.trace_id == run.get_span_context().trace_id
    assert job.parent is not None
    assert job.parent.span_id == run.get_span_context().span_id
    assert dict(job.attributes or {}) == {"aptools.action_id": "action-1"}
    with telemetry.job_span(None, "action-2"):
        pass
    assert recorded.named("aptools job")[-1].parent is None


def test_nothing_is_recorded_when_not_configured(make: MakeClient) -> None:
    # Installed, but no provider set globally nor given: the app is built
    # without telemetry.
    provider, _ = make(store=MemoryStore())
    assert provider.compile().telemetry is None
    assert traceparent() is None


_MISSING = """
import sys
sys.modules["opentelemetry"] = None  # as if not installed
from aptools import MemoryStore, Provider
from aptools.telemetry import build, traceparent

provider = Provider(title="t", scope="s", admin_contact="a@example.org",
                    input_schema={"type": "object"}, store=MemoryStore(),
                    client_id="c", client_secret="s")
provider.run(lambda request, caller: {})
assert provider.compile().telemetry is None
assert build() is None and traceparent() is None
try:
    build(tracer_provider=object())
except ImportError as exc:
    assert "aptools[otel]" in str(exc)
else:
    raise AssertionError("no ImportError")
print("ok")
"""


def test_nothing_is_recorded_when_not_installed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _MISSING], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_readiness_asks_the_store_once_in_a_while(
    make: MakeClient, recorded: Recorded
) -> None:
    _, client = make(**recorded.providers())
    answers = {client.call("GET", "/ready").status_code for _ in range(20)}
    assert answers == {200}
    assert len(recorded.named("GET /test/ready")) == 20
    assert len(recorded.named("aptools.store ready")) == 1  # the verdict is kept
