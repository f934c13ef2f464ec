"""Traces and metrics through OpenTelemetry: optional, and free when off.

Install ``aptools[otel]`` (the ``opentelemetry-api`` package only) and
configure OpenTelemetry as its documentation says (an SDK, exporters); a
provider built afterwards (``provider.wsgi()`` / ``provider.asgi()``)
then records:

- a span per request, ``{method} {route}``, with the operation, route, status
  code, action id, run ``request_id`` and the caller's identity id (never a
  token or a body), continuing the caller's W3C ``traceparent`` if it sent
  one;
- a span per Globus Auth call (introspection, dependent-token grant, groups)
  and per store call, as children of the request's span;
- metrics: ``http.server.request.duration`` (seconds, by method, route,
  operation and status: its count is the requests by operation and
  status), ``aptools.globus_auth.duration`` (seconds, by call),
  ``aptools.globus_auth.errors`` (by call and error code) and
  ``aptools.store.unavailable`` (store calls that found the store
  unreachable or too slow, by store method).

Whether to record is decided once, when the app is built (:func:`build`):
with OpenTelemetry missing, or installed but with neither a tracer provider
nor a meter provider set (nor given to the :class:`~aptools.Provider`), the
app is the same app as without this module: no middleware, no wrapper, no
branch per request.

Jobs: :func:`traceparent` gives the current span's W3C ``traceparent`` (to
keep with a job when the run request queues it), and
:meth:`Telemetry.job_span` runs a job's work as a span in that same trace,
in whichever process or host claims it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from aptools.auth.globus_client import unobserved

if TYPE_CHECKING:
    from aptools.protocol.effects import StoreCall
    from aptools.store.jobqueue import JobQueue

__all__ = ["Telemetry", "build", "traceparent", "unobserved"]


class Telemetry(Protocol):
    """What a built provider records with (see :func:`build`)."""

    def middleware(self, operations: dict[tuple[str, str], str]) -> Any:
        """Falcon middleware (both faces) making a span per request and
        recording its duration; ``operations`` maps (path, method) to the
        operation's name."""

    def store_call(self, inner: StoreCall) -> StoreCall:
        """``inner``, each store call made inside a span of its own."""

    def auth_call(self, name: str) -> AbstractContextManager[None]:
        """A block calling Globus Auth (``name``: ``introspect``,
        ``dependent_token``, ``groups``) as a span, timed and its
        :class:`~aptools.AuthServiceError` counted."""

    def job_span(
        self, carrier: str | None, action_id: str, name: str = "job"
    ) -> AbstractContextManager[None]:
        """A block running a job's work as a span (``aptools job``) in the
        trace of ``carrier``, the W3C ``traceparent`` kept with the job
        (:func:`traceparent`); a new trace when it is ``None``."""

    def job_metrics(self, queue: JobQueue) -> Any:
        """The job metrics of ``queue``'s provider (made once per provider
        and process): ``aptools.job.start_latency`` and
        ``aptools.job.duration`` (seconds; durations by
        ``aptools.job.outcome``), ``aptools.job.takeovers``,
        ``aptools.job.lease_expiries`` and the gauge ``aptools.jobs`` (by
        ``aptools.job.state``: queued, running, waiting)."""


def build(tracer_provider: Any = None, meter_provider: Any = None) -> Telemetry | None:
    """The telemetry a provider records with, or ``None`` (the default when
    OpenTelemetry is not installed, or installed but not configured).

    ``tracer_provider`` and ``meter_provider`` are OpenTelemetry's
    ``TracerProvider`` and ``MeterProvider`` (the global ones when not
    given, as every OpenTelemetry instrumentation takes them). Raises
    :class:`ImportError` when one is given but ``opentelemetry-api`` is not
    installed.
    """
    given = tracer_provider is not None or meter_provider is not None
    try:
        from aptools.telemetry._otel import Instruments, configured
    except ImportError:
        if given:
            raise ImportError(
                "a tracer or meter provider was given but OpenTelemetry is not "
                "installed: pip install 'aptools[otel]'"
            ) from None
        return None
    if not given and not configured():
        return None
    return Instruments(tracer_provider, meter_provider)


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or ``None`` (no
    OpenTelemetry, or no span being recorded). A run request that queues a
    job keeps it with the job, for :meth:`Telemetry.job_span`."""
    try:
        from aptools.telemetry._otel import current_traceparent
    except ImportError:
        return None
    return current_traceparent()
