"""The Prometheus example: request counts and latency by operation and status."""

from __future__ import annotations

import importlib
import os
import re
from types import ModuleType

import falcon.testing
import pytest

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
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


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

    assert grew("aptools_requests_total", operation="run", status="202") == 1
    assert grew("aptools_requests_total", operation="run", status="400") == 1
    assert grew("aptools_requests_total", operation="status", status="404") == 1
    assert grew("aptools_request_seconds_count", operation="run") == 2
