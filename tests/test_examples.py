"""The examples, in process, on both flavours."""

from __future__ import annotations

import importlib
import sys
import time
from types import ModuleType

import pytest

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import Client


def load(
    name: str, auth: FakeGlobusAuth, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    monkeypatch.setenv("WATCHASAY_SCOPE", auth.scope)
    monkeypatch.setenv("COUNTDOWN_SCOPE", auth.scope)
    monkeypatch.setenv("APTOOLS_STORE", "memory:")
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def client_for(module: ModuleType, flavour: str) -> Client:
    app = module.app if flavour == "wsgi" else module.asgi
    return Client(app, module.provider.prefix)


def test_watchasay(
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    flavour: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = load("examples.watchasay.app", auth, monkeypatch)
    client = client_for(module, flavour)
    about = client.call("GET", "/").json
    assert about["synchronous"] is True and about["visible_to"] == ["public"]
    assert about["runnable_by"] == ["all_authenticated_users"]
    assert module.provider.prefix == "/skeleton"
    result = client.run(alice, {"input_string": "hi"})
    assert result.status_code == 202
    assert result.json["status"] == "SUCCEEDED"
    assert result.json["details"] == {"you_said": "hi"}
    extra = client.run(alice, {"input_string": "hi", "other": 1}, request_id="r2")
    assert extra.status_code == 400


def test_countdown(
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    flavour: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = load("examples.countdown.app", auth, monkeypatch)
    client = client_for(module, flavour)
    assert client.call("GET", "/").json["log_supported"] is True
    assert client.run(alice, {"seconds": 61}).status_code == 400
    assert client.run(alice, {"seconds": -1}).status_code == 400
    started = client.run(alice, {"seconds": 0.3})
    assert started.status_code == 202 and started.json["status"] == "ACTIVE"
    action_id = started.json["action_id"]
    assert client.call("POST", f"/{action_id}/release", alice).status_code == 409
    active = client.call("GET", "/actions", alice).json
    assert [a["action_id"] for a in active] == [action_id]
    time.sleep(0.35)
    assert (
        client.call("GET", f"/{action_id}/status", alice).json["status"] == "SUCCEEDED"
    )
    assert client.call("GET", "/actions", alice).json == []
    log = client.call(
        "GET", f"/actions/{action_id}/log", alice, params={"reverse_order": "true"}
    )
    assert [e["code"] for e in log.json["entries"]] == ["FINISHED", "STARTED"]
    assert client.call("DELETE", f"/actions/{action_id}", alice).status_code == 200

    canceled = client.run(alice, {"seconds": 30}, request_id="r2").json["action_id"]
    doc = client.call("POST", f"/{canceled}/cancel", alice).json
    assert doc["status"] == "FAILED" and doc["display_status"] == "Canceled"
    assert client.call("GET", f"/{canceled}/status", alice).json["status"] == "FAILED"
