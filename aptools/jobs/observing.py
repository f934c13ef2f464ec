"""What a runner records of a job: log records carrying its action id, and
with telemetry on, its span (in the trace of the run request that queued
it, in whichever process runs it) and the job metrics."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from aptools.errors import StoreUnavailable
from aptools.jobs import fairshare
from aptools.logjson import log_context

if TYPE_CHECKING:
    from aptools.jobs.handle import Job

__all__ = ["kept_trace", "lease_expired", "observed"]

log = logging.getLogger("aptools.jobs")


def kept_trace(engine: Any, action_id: str) -> None:
    """Keep the current span's ``traceparent`` with ``action_id``'s job
    (called at run, after the job was enqueued); nothing without telemetry."""
    if getattr(engine, "telemetry", None) is None:
        return
    from aptools.telemetry import traceparent

    carrier = traceparent()
    if carrier is not None:
        engine.queue.keep_trace(action_id, carrier)


def lease_expired(engine: Any) -> None:
    """Count a job this process found taken from it (its lease ran out)."""
    metrics = getattr(engine, "job_metrics", None)
    if metrics is not None:
        metrics.lease_expiries.add(1)


def _outcome(job: Job) -> str:
    if job.lost:
        return "lost"
    if job.canceled:
        return "canceled"
    return job.action.status


def _opened(engine: Any, job: Job) -> tuple[Any, AbstractContextManager[Any]]:
    """The job metrics and the job's span, or ``None`` and no span."""
    telemetry = getattr(engine, "telemetry", None)
    if telemetry is None:
        return None, contextlib.nullcontext()
    metrics = engine.job_metrics
    origin = None
    with contextlib.suppress(StoreUnavailable):
        origin = engine.queue.origin(job.action_id)
        if origin is not None and job.attempt == 1:
            metrics.start_latency.record(max(engine.queue.now() - origin[1], 0.0))
    if job.attempt > 1:
        metrics.takeovers.add(1)
    carrier = None if origin is None else origin[0]
    return metrics, telemetry.job_span(carrier, job.action_id)


@contextmanager
def observed(engine: Any, job: Job) -> Iterator[None]:
    """Run a job's work (and the storing of its outcome) in this block: its
    log records carry its ``action_id``; with telemetry, it is a span
    (``aptools job``) in its run request's trace, and its start latency
    (first attempt), take-over (later attempts) and duration by outcome are
    recorded. A job that waited its caller's turn says it started
    (:func:`aptools.jobs.fairshare.started`). Nothing recorded here can
    keep the job from running: a failure to record is logged."""
    with log_context(action_id=job.action_id):
        metrics: Any = None
        span: AbstractContextManager[Any] = contextlib.nullcontext()
        try:
            fairshare.started(engine, job)
            metrics, span = _opened(engine, job)
        except Exception:
            log.exception("job %s: its start could not be recorded", job.action_id)
        started = time.monotonic()
        with span:
            try:
                yield
            finally:
                if metrics is not None:
                    metrics.duration.record(
                        time.monotonic() - started,
                        {"aptools.job.outcome": _outcome(job)},
                    )
