"""One access-log line per request, and request hooks for metrics."""

from __future__ import annotations

import logging

import pytest

from aptools import RequestInfo
from aptools.testing import FakeIdentity

from .conftest import MakeClient

GOOD = {"input_string": "hello"}


def test_one_structured_line_per_request(
    make: MakeClient, alice: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aptools.access")
    _, client = make()  # built with the access log enabled
    ran = client.run(alice, GOOD)
    client.call("GET", f"/actions/{ran.json['action_id']}", alice)
    client.call("GET", "/nowhere/at/all")
    records = [r for r in caplog.records if r.name == "aptools.access"]
    assert len(records) == 3
    run, status, lost = (r.aptools for r in records)  # type: ignore[attr-defined]
    assert run["operation"] == "run" and run["status"] == 202
    assert run["caller"] == alice.urn
    assert run["action_id"] == ran.json["action_id"]
    assert run["route"] == "/test/run" and run["method"] == "POST"
    assert run["duration"] > 0
    assert status["operation"] == "status" and status["status"] == 200
    assert status["action_id"] == ran.json["action_id"]
    assert lost["operation"] is None and lost["status"] == 404
    assert alice.token not in caplog.text
    assert "hello" not in caplog.text  # no request body either


def test_access_log_can_be_turned_off(
    make: MakeClient, alice: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aptools.access")
    _, client = make(access_log=False)
    client.run(alice, GOOD)
    assert not [r for r in caplog.records if r.name == "aptools.access"]


def test_access_log_costs_nothing_unless_enabled(
    make: MakeClient, alice: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    _, quiet = make()  # built while aptools.access is not enabled for INFO
    caplog.set_level(logging.INFO, logger="aptools.access")
    quiet.run(alice, GOOD)
    assert not [r for r in caplog.records if r.name == "aptools.access"]


def test_after_request_hooks(
    make: MakeClient, alice: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[RequestInfo] = []

    def broken(info: RequestInfo) -> None:
        raise RuntimeError("metrics backend down")

    _, client = make(access_log=False, after_request=[seen.append, broken])
    with caplog.at_level(logging.ERROR, logger="aptools"):
        ran = client.run(alice, GOOD)
        refused = client.run("not-a-token", GOOD, request_id="r2")
    assert ran.status_code == 202 and refused.status_code == 401
    assert [(i.operation, i.status) for i in seen] == [("run", 202), ("run", 401)]
    assert seen[0].caller == alice.urn and seen[1].caller is None
    assert "metrics backend down" in caplog.text
