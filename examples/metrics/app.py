"""An echo provider with Prometheus metrics, through OpenTelemetry.

    gunicorn examples.metrics.app:app      # GET /metrics for Prometheus
    uvicorn examples.metrics.app:asgi

aptools records its metrics with OpenTelemetry (``aptools[otel]``); here the
OpenTelemetry SDK's Prometheus reader hands them to prometheus-client, whose
registry ``/metrics`` serves: requests and latency by operation, route and
status (``http_server_request_duration_seconds``), Globus Auth latency and
errors, store unavailability. Needs::

    pip install 'aptools[otel]' opentelemetry-sdk opentelemetry-exporter-prometheus

Each process keeps its own counts: with several workers, send them to an
OpenTelemetry Collector over OTLP instead and let Prometheus scrape that
(see the README's "Operating a provider").
"""

import os
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aptools import ActionRequest, Caller, Provider

# The SDK, given to this provider only. An application would as well set it
# globally (opentelemetry.metrics.set_meter_provider) before building the app.
meter_provider = MeterProvider(
    metric_readers=[PrometheusMetricReader()],
    resource=Resource.create({"service.name": "metered-echo"}),
)

provider = Provider(
    title="Metered echo",
    scope=os.environ.get(
        "METERED_SCOPE",
        "https://auth.globus.org/scopes/d3a66776-759f-4316-ba55-21725fe37323/action_all",
    ),
    admin_contact="support@example.org",
    prefix="/metered",
    synchronous=True,
    input_schema={
        "type": "object",
        "properties": {"input_string": {"type": "string"}},
        "required": ["input_string"],
    },
    meter_provider=meter_provider,
)


@provider.run
def run(request: ActionRequest, caller: Caller) -> dict[str, str]:
    return {"you_said": request.body["input_string"]}


class _Metrics:
    def on_get(self, req: Any, resp: Any) -> None:
        resp.data = generate_latest()
        resp.content_type = CONTENT_TYPE_LATEST


class _AsyncMetrics:
    async def on_get(self, req: Any, resp: Any) -> None:
        resp.data = generate_latest()
        resp.content_type = CONTENT_TYPE_LATEST


# The apps are plain Falcon apps: add the scrape endpoint next to the provider.
app = provider.wsgi()
app.add_route("/metrics", _Metrics())
asgi = provider.asgi()
asgi.add_route("/metrics", _AsyncMetrics())
