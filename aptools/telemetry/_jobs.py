"""The job metrics of :mod:`aptools.telemetry` (OpenTelemetry installed)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.metrics import CallbackOptions, Observation

if TYPE_CHECKING:
    from aptools.store.jobqueue import JobQueue

__all__ = ["JobInstruments"]

# Job durations and start latencies, in seconds: a second to a day.
_JOB_SECONDS: Final = (
    0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0
)  # fmt: skip


class JobInstruments:
    """The metrics of one provider's jobs, recorded by its runners."""

    def __init__(self, meter: Any, queue: JobQueue) -> None:
        self._queue = queue
        self.start_latency = meter.create_histogram(
            "aptools.job.start_latency",
            unit="s",
            description="From a job's queueing to its first start (queue's clock).",
            explicit_bucket_boundaries_advisory=_JOB_SECONDS,
        )
        self.duration = meter.create_histogram(
            "aptools.job.duration",
            unit="s",
            description="A job's run in one process, by outcome.",
            explicit_bucket_boundaries_advisory=_JOB_SECONDS,
        )
        self.takeovers = meter.create_counter(
            "aptools.job.takeovers",
            unit="{job}",
            description="Jobs started again after their holder's lease ran out.",
        )
        self.lease_expiries = meter.create_counter(
            "aptools.job.lease_expiries",
            unit="{job}",
            description="Jobs this process found taken from it (lease ran out).",
        )
        meter.create_observable_gauge(
            "aptools.jobs",
            callbacks=[self._observe],
            unit="{job}",
            description=(
                "Unfinished jobs by state (queued, running, waiting), as the "
                "queue counts them: the same in every process."
            ),
        )

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        try:
            counted = self._queue.counts()
        except Exception:  # an unreachable store: no observation this time
            return []
        return [Observation(n, {"aptools.job.state": s}) for s, n in counted.items()]
