"""The aptools echo provider with OpenTelemetry absent, idle or recording.

- ``absent``: as if ``opentelemetry-api`` were not installed (its import
  fails);
- ``idle``: installed, with no tracer or meter provider set;
- ``on``: the SDK's providers set globally (spans made and dropped, no
  exporter; metrics aggregated in memory), for the cost of recording.
"""

from __future__ import annotations

import sys

from aptools import Provider

MODES = ("absent", "idle", "on")


def build(mode: str) -> Provider:
    if mode not in MODES:
        raise ValueError(mode)
    if mode == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    elif mode == "on":
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
        metrics.set_meter_provider(
            MeterProvider(metric_readers=[InMemoryMetricReader()])
        )
    from .aptools_app import build as echo

    made = echo("memory:")
    recording = made.compile().telemetry is not None
    if recording != (mode == "on"):
        raise RuntimeError(f"otel-{mode}: telemetry recording is {recording}")
    return made
