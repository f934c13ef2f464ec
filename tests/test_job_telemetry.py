"""Jobs with telemetry: the run request's trace context kept with the job,
the job's span in that trace also when another process (another provider
object on the same store, with its own tracer) runs it, job log records
carrying the action id, and the job metrics. Recorded with the SDK's
in-memory exporters, on both faces and every store."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aptools import Action, Caller, Job
from aptools.logjson import JSONFormatter
from aptools.testing import FakeIdentity
from aptools.testing.waiting import wait_for
from tests.test_jobs import (  # noqa: F401 - fixtures
    Build,
    build,
    ended,
    new_store,
    status,
    store_kind,
)

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures

pytest.importorskip("opentelemetry.sdk")

from .test_telemetry import Recorded


@pytest.fixture
def job_log() -> Iterator[io.StringIO]:
    """JSON records of the jobs' own logger."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("tests.job")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def _run(client: Any, who: FakeIdentity, request_id: str = "r1") -> str:
    answer = client.run(who, {"n": 1}, request_id=request_id)
    assert answer.status_code == 202, answer.text
    action_id: str = answer.json["action_id"]
    return action_id


def _sum(recorded: Recorded, metric: str, **attributes: str) -> float:
    return sum(
        getattr(p, "count", None) or getattr(p, "value", 0)
        for p in recorded.points(metric)
        if all(p.attributes.get(k) == v for k, v in attributes.items())
    )


def test_the_job_span_joins_the_run_requests_trace_and_metrics_are_kept(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    job_log: io.StringIO,
) -> None:
    recorded = Recorded()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        logging.getLogger("tests.job").info("working")
        return {"done": True}

    _, client = build(work, **recorded.providers())
    action_id = _run(client, alice)
    assert ended(client, alice, action_id)["status"] == "SUCCEEDED"
    (run,) = [s for s in recorded.finished() if s.name.endswith("/run")]
    jobs = wait_for(lambda: recorded.named("aptools job"), "the job's span")
    (job,) = jobs
    assert job.context.trace_id == run.context.trace_id
    assert dict(job.attributes or {})["aptools.action_id"] == action_id
    (record,) = [json.loads(line) for line in job_log.getvalue().splitlines()]
    assert record["action_id"] == action_id
    assert record["trace_id"] == format(run.context.trace_id, "032x")
    wait_for(
        lambda: (
            _sum(
                recorded, "aptools.job.duration", **{"aptools.job.outcome": "SUCCEEDED"}
            )
            == 1
        ),
        "the job's duration recorded",
    )
    assert _sum(recorded, "aptools.job.start_latency") == 1
    assert _sum(recorded, "aptools.job.takeovers") == 0
    states = {
        p.attributes["aptools.job.state"] for p in recorded.points("aptools.jobs")
    }
    assert states == {"queued", "running", "waiting"}


def test_a_job_run_by_another_process_is_in_the_run_requests_trace(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
) -> None:
    web, worker = Recorded(), Recorded()
    started: list[str] = []

    def hangs(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        started.append(action.action_id)
        give_up = time.monotonic() + 60
        while not job.lost and time.monotonic() < give_up:
            time.sleep(0.01)
        return {"here": "web"}

    def finishes(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        return {"here": "worker"}

    # Resumable: at SIGTERM its job is handed back for another process.
    first, client = build(hangs, resumable=True, **web.providers())
    action_id = _run(client, alice)
    wait_for(lambda: started == [action_id], "the first process runs the job")
    second, worker_client = build(finishes, resumable=True, **worker.providers())
    # The first process stops (SIGTERM): it hands the job back, and the
    # other takes it, with the trace context kept in the store.
    first.compile().execution.stop()
    other = second.compile().jobs
    assert other is not None
    other.wake()
    # Read from the worker's side: this process no longer serves.
    done = ended(worker_client, alice, action_id)
    assert done["details"] == {"here": "worker"}
    (run,) = [s for s in web.finished() if s.name.endswith("/run")]
    (job,) = wait_for(lambda: worker.named("aptools job"), "the worker's span")
    assert job.context.trace_id == run.context.trace_id
    assert dict(job.attributes or {})["aptools.action_id"] == action_id
    wait_for(
        lambda: (
            _sum(web, "aptools.job.duration", **{"aptools.job.outcome": "lost"}) == 1
        ),
        "the first process's run recorded as lost",
    )
