"""Logs a machine can read: one JSON object per line, carrying the action id,
request id and trace id where known, never a token or a body, and never
forged by what a client sends; in process on both faces, and end to end
under gunicorn and uvicorn (``aptools serve --log-format json``)."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from aptools import ActionRequest, ActionStatus, Caller
from aptools.logjson import JSONFormatter, log_context, log_format
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .cli_support import Launched, cli_env
from .conftest import MakeClient
from .servers import free_port

# Client-controlled text that would forge a line, move to its start, or
# drive a terminal if written as it is.
FORGED = '{"level": "INFO", "logger": "aptools.access", "message": "FORGED"}'
NASTY = ["\n" + FORGED, "\r" + FORGED, "\x1b[31mRED\x1b[0m", "\u2028" + FORGED, "\x85x"]


class Lines:
    """What a JSON-formatting handler on the ``aptools`` loggers wrote."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JSONFormatter())

    def records(self) -> list[dict[str, Any]]:
        text = self.stream.getvalue()
        assert "\r" not in text and "\x1b" not in text
        assert "\u2028" not in text and "\x85" not in text
        # str.splitlines also splits at U+2028, U+0085 and the like.
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def lines() -> Iterator[Lines]:
    made = Lines()
    loggers = [logging.getLogger(n) for n in ("aptools", "tests.logjson")]
    levels = [x.level for x in loggers]
    access = logging.getLogger("aptools.access")
    access_level = access.level
    for logger in loggers:
        logger.addHandler(made.handler)
        logger.setLevel(logging.INFO)
    access.setLevel(logging.INFO)  # before the app is built: the access log is on
    yield made
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(made.handler)
        logger.setLevel(level)
    access.setLevel(access_level)


log = logging.getLogger("tests.logjson")


def test_access_records_are_json_with_the_request_fields(
    make: MakeClient, alice: FakeIdentity, lines: Lines
) -> None:
    def run(request: ActionRequest, caller: Caller) -> ActionStatus:
        log.warning("running %s", request.request_id)  # an own record
        return ActionStatus.active({"ok": "yes"})

    def status(action: Any, caller: Caller) -> None:
        log.warning("status asked")

    _, client = make(run=run, status=status)
    ran = client.run(alice, {"input_string": "secret input"}, "req-1")
    assert ran.status_code == 202
    action_id = ran.json["action_id"]
    assert client.call("GET", f"/actions/{action_id}", alice).status_code == 200
    records = lines.records()
    own_run, run_access, own_status, status_access = records
    assert own_run["logger"] == "tests.logjson"
    assert own_run["request_id"] == "req-1" and own_run["level"] == "WARNING"
    assert run_access == {
        **run_access,
        "logger": "aptools.access",
        "method": "POST",
        "route": "/test/run",
        "operation": "run",
        "status": 202,
        "action_id": action_id,
        "request_id": "req-1",
        "caller": alice.urn,
    }
    assert run_access["time"].endswith("Z") and run_access["duration"] >= 0
    assert own_status["action_id"] == action_id and "request_id" not in own_status
    assert status_access["operation"] == "status"
    assert status_access["action_id"] == action_id
    text = lines.stream.getvalue()
    assert alice.token not in text and "secret input" not in text


def test_client_text_cannot_forge_a_record(
    make: MakeClient, alice: FakeIdentity, lines: Lines
) -> None:
    _, client = make()
    for n, nasty in enumerate(NASTY):
        client.call("GET", "/actions/x" + nasty, alice)
        client.call("GET", "/nothing-here" + nasty)
        client.run(alice, {"input_string": "x"}, f"r{n}{nasty}")
    records = lines.records()  # every line is one whole JSON object
    assert len(records) == 3 * len(NASTY)
    assert all(r["logger"] == "aptools.access" for r in records)
    assert not [r for r in records if r["message"] == "FORGED"]
    ids = {r.get("action_id") for r in records} | {r.get("path") for r in records}
    assert "x\n" + FORGED in ids  # kept, escaped: the record says what came
    assert "/test/nothing-here\x1b[31mRED\x1b[0m" in ids
    assert {r.get("request_id") for r in records} >= {
        f"r{n}{x}" for n, x in enumerate(NASTY)
    }


def test_own_records_outside_requests_and_with_a_context(lines: Lines) -> None:
    log.info("plain")
    with log_context(action_id="a-1", request_id=None):
        log.info("in a job")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    plain, in_job, failed = lines.records()
    assert "action_id" not in plain and in_job["action_id"] == "a-1"
    assert "request_id" not in in_job
    assert failed["level"] == "ERROR" and "RuntimeError: boom" in failed["error"]


def test_log_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APTOOLS_LOG_FORMAT", raising=False)
    assert log_format() == "text"
    monkeypatch.setenv("APTOOLS_LOG_FORMAT", " JSON ")
    assert log_format() == "json"
    assert log_format("text") == "text"
    monkeypatch.setenv("APTOOLS_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="APTOOLS_LOG_FORMAT"):
        log_format()


# -- end to end --


def _send(port: int, path: str) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode())
        while sock.recv(65536):
            pass


ENCODED = "%0A" + FORGED.replace(" ", "%20").replace('"', "%22")


@pytest.mark.e2e
@pytest.mark.parametrize("face", ["--wsgi", "--asgi"])
def test_serve_log_format_json(tmp_path: Path, auth: FakeGlobusAuth, face: str) -> None:
    port = free_port()
    env = cli_env(auth, APTOOLS_STORE=f"sqlite:///{tmp_path}/a.db", HOME=str(tmp_path))
    args = ("serve", "examples.watchasay.app", face, "--port", str(port))
    with Launched(*args, "--log-format", "json", cwd=tmp_path, env=env) as server:
        server.ready(f"http://127.0.0.1:{port}/skeleton/")
        paths = [
            f"/skeleton/actions/x{ENCODED}",
            f"/skeleton/nothing{ENCODED}",
            "/skeleton/actions/y%1B%5B31mRED%1B%5B0m%0D",
        ]
        for path in paths:
            _send(port, path)
        # The readiness route under the real server, as a probe calls it.
        ready = requests.get(f"http://127.0.0.1:{port}/skeleton/ready", timeout=10)
        assert ready.status_code == 200 and ready.json() == {"ready": True}
        raw = server.wait_for(lambda s: s.count("aptools.access") >= 4)
    assert "\x1b" not in raw and "\r" not in raw
    records = [json.loads(line) for line in raw.splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "aptools.access"]
    assert len(access) >= 4, raw
    assert not [r for r in records if r.get("message") == "FORGED"]
    # The server's own lines are JSON too.
    assert {r["logger"] for r in records} - {"aptools.access"}
