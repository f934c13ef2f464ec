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


FORGED = "2030-01-01 00:00:00,000 INFO aptools.access: POST /test/run 202 FORGED"


@pytest.mark.parametrize(
    "path",
    [
        "/actions/x%0A" + FORGED.replace(" ", "%20"),  # API 1.1 action id
        "/x%0D%0A" + FORGED.replace(" ", "%20") + "/status",  # API 1.0 action id
        "/nothing-here%0A" + FORGED.replace(" ", "%20"),  # unrouted path
        "/actions/y%1B%5B31mRED%1B%5B0m",  # terminal escapes
        "/actions/z%E2%80%A8" + FORGED.replace(" ", "%20"),  # line separator
    ],
)
def test_client_text_cannot_forge_an_access_log_line(
    make: MakeClient, alice: FakeIdentity, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.INFO, logger="aptools.access")
    _, client = make()
    for who in (None, alice):  # no token needed to try
        client.call("GET", path, who)
    lines = [r.getMessage() for r in caplog.records if r.name == "aptools.access"]
    assert len(lines) == 2
    for line in lines:
        assert line.isprintable() and line.isascii()
        assert "\\u001b" in line or "FORGED" in line  # the text is kept, escaped


def test_the_text_line_carries_the_request_id_quoted(
    make: MakeClient, alice: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aptools.access")
    _, client = make()
    client.run(alice, GOOD, request_id="r-42")
    forged = "r\n" + FORGED
    client.run(alice, GOOD, request_id=forged)
    plain, quoted = (
        r.getMessage() for r in caplog.records if r.name == "aptools.access"
    )
    assert plain.endswith(" request_id=r-42")
    assert quoted.isprintable() and ' request_id="r\\n2030-01-01 ' in quoted
    records = [r.aptools for r in caplog.records if r.name == "aptools.access"]  # type: ignore[attr-defined]
    assert [r["request_id"] for r in records] == ["r-42", forged]


def test_a_crash_log_quotes_the_path(
    make: MakeClient, alice: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    def run(request: object, caller: object) -> None:
        raise RuntimeError("bug")

    _, client = make(run=run)
    with caplog.at_level(logging.ERROR, logger="aptools"):
        got = client.call(
            "POST", "/run?x=1", alice, json={"request_id": "r", "body": GOOD}
        )
    assert got.status_code == 500
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "unhandled error on POST /test/run"


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("/test/actions/abc-123", "/test/actions/abc-123"),
        ("x\nFORGED", '"x\\nFORGED"'),
        ("\x1b[31m", '"\\u001b[31m"'),
        ("a b", '"a b"'),  # a space could fake another field
        ("\\n", '"\\\\n"'),  # a literal backslash is not an escape
        ("é\u2028", '"\\u00e9\\u2028"'),
    ],
)
def test_quoted_log_fields(text: str, logged: str) -> None:
    from aptools.logtext import quoted

    assert quoted(text) == logged
