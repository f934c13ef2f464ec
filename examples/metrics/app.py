"""An echo provider with Prometheus metrics: requests and latency by operation
and status, through a request hook.

    gunicorn examples.metrics.app:app      # GET /metrics for Prometheus
    uvicorn examples.metrics.app:asgi

Needs ``prometheus-client``. With several gunicorn workers, set
``PROMETHEUS_MULTIPROC_DIR`` as the prometheus-client documentation says.
"""

import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from aptools import ActionRequest, Caller, Provider, RequestInfo

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
)


@provider.run
def run(request: ActionRequest, caller: Caller) -> dict[str, str]:
    return {"you_said": request.body["input_string"]}


REQUESTS = Counter(
    "aptools_requests_total",
    "Requests answered, by operation and HTTP status.",
    ["operation", "status"],
)
LATENCY = Histogram(
    "aptools_request_seconds",
    "Time to answer a request, by operation.",
    ["operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)


@provider.after_request
def measure(info: RequestInfo) -> None:
    operation = info.operation or "unrouted"
    REQUESTS.labels(operation, str(info.status)).inc()
    LATENCY.labels(operation).observe(info.duration)


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
