"""The Prometheus example, through OpenTelemetry: request counts and latency
by operation and status."""

from __future__ import annotations

import importlib
import os
import re
from types import ModuleType

import falcon.testing
import pytest

pytest.importorskip("opentelemetry.exporter.prometheus")

from aptools.testing import FakeGlobusAuth, FakeIdentity, ProviderClient


@pytest.fixture(scope="module")
def example(auth: FakeGlobusAuth) -> ModuleType:
    # Imported once: prometheus-client's default registry is process-wide.
    os.environ["METERED_SCOPE"] = auth.scope
    try:
        return importlib.import_module("examples.metrics.app")
    finally:
        del os.environ["METERED_SCOPE"]


def _sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` that have ``labels`` (among others)."""
    wanted = {f'{k}="{v}"' for k, v in labels.items()}
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and wanted <= set(match.group(1).split(",")):
            total += float(match.group(2))
    return total


def test_requests_are_counted_by_operation_and_status(
    example: ModuleType, alice: FakeIdentity, flavour: str
) -> None:
    scrape = falcon.testing.TestClient(
        example.app if flavour == "wsgi" else example.asgi
    )
    before = scrape.simulate_get("/metrics").text
    client = ProviderClient(example.provider, flavour=flavour)
    assert client.run({"input_string": "hi"}, as_=alice).status_code == 202
    assert client.run({"nope": 1}, as_=alice).status_code == 400
    assert client.status("no-such-action", as_=alice).status_code == 404
    after = scrape.simulate_get("/metrics")
    assert after.status_code == 200
    assert after.headers["content-type"].startswith("text/plain")

    def grew(name: str, **labels: str) -> float:
        return _sample(after.text, name, **labels) - _sample(before, name, **labels)

    requests = "http_server_request_duration_seconds_count"
    run, status = {"aptools_operation": "run"}, {"aptools_operation": "status"}
    assert grew(requests, **run, http_response_status_code="202") == 1
    assert grew(requests, **run, http_response_status_code="400") == 1
    assert grew(requests, **status, http_response_status_code="404") == 1
    assert grew(requests, **run) == 2
    assert grew("aptools_globus_auth_duration_seconds_count") <= 1  # cached token
