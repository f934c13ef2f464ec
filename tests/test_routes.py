"""The route table, HEAD on GET routes, and the execution seam."""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any

import pytest

from aptools import MemoryStore
from aptools.execution import Execution
from aptools.protocol.routes import ROUTES, find, full_path, route_table
from aptools.testing import FakeIdentity
from tests.conftest import MakeClient


def _log(action: Any, caller: Any, query: Any) -> list[Any]:
    return []


def test_head_answers_as_get_without_a_body(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make(log=_log)
    action_id = client.run(alice, {"input_string": "hi"}).json["action_id"]
    paths = [
        "/",
        "/openapi.json",
        "/actions",
        f"/{action_id}/status",
        f"/actions/{action_id}",
        f"/{action_id}/log",
        f"/actions/{action_id}/log",
        "/actions/no-such-action",  # an error answers alike
    ]
    for path in paths:
        got = client.call("GET", path, alice)
        head = client.call("HEAD", path, alice)
        assert head.status_code == got.status_code, path
        assert head.content == b"", path
        assert head.headers.get("content-type") == got.headers.get("content-type")
        assert head.headers.get("access-control-allow-origin") == got.headers.get(
            "access-control-allow-origin"
        )
    # HEAD is refused where GET is not routed
    assert client.call("HEAD", "/run", alice).status_code == 405


def test_every_route_is_served_and_documented(
    make: MakeClient, alice: FakeIdentity
) -> None:
    provider, client = make(
        log=_log, resume=lambda action, caller: None, enumerate=lambda q, c: []
    )
    document = provider.openapi()
    for route in ROUTES:
        path = full_path(provider.prefix, route.path)
        operation = document["paths"][path][route.method.lower()]
        assert operation["summary"] == route.summary
        assert set(route.answers) <= set(operation["responses"])
        concrete = path.replace("{action_id}", "x")
        answer = client.call(route.method, concrete[len("/test") :] or "/", alice)
        assert answer.status_code != 405, (route.method, path)
    assert "head" not in document["paths"]["/test"]


def test_optional_routes_follow_the_handlers() -> None:
    names = {(r.name, r.method) for r in route_table(set())}
    assert ("log", "GET") not in names and ("resume", "POST") in names
    assert ("enumerate", "GET") in names and ("enumerate", "HEAD") in names
    assert ("log", "HEAD") in {(r.name, r.method) for r in route_table({"log"})}
    assert find("release", "1.1").method == "DELETE"
    assert find("release", "1.0").path == "/{action_id}/release"
    with pytest.raises(LookupError):
        find("nonsense")


def test_the_spec_is_frozen(make: MakeClient) -> None:
    provider, _ = make()
    spec = provider.compile()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.max_body = 1  # type: ignore[misc]
    assert "housekeeping" not in {f.name for f in dataclasses.fields(spec)}


class _CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.purged = threading.Event()

    def purge(self, now: float) -> int:
        self.purged.set()
        return super().purge(now)


def test_housekeeping_purges_off_the_request_path(
    make: MakeClient, alice: FakeIdentity
) -> None:
    store = _CountingStore()
    provider, client = make(store=store)
    execution = provider.compile().execution
    assert not execution.running  # nothing starts before the first run
    assert client.run(alice, {"input_string": "hi"}).status_code == 202
    assert execution.running
    assert store.purged.wait(30)
    execution.stop()
    assert not execution.running
    assert client.run(alice, {"input_string": "hi"}, "r2").status_code == 202
    assert not execution.running  # stopped for good, until started again
    execution.start()
    assert execution.running
    execution.stop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_its_own_housekeeping() -> None:
    execution = Execution(MemoryStore(), purge_interval=3600)
    execution.start()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no inherited thread, one of its own once asked
        try:
            before = execution.running
            execution.start()
            os.write(write, b"%d%d" % (before, execution.running))
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 2)
    os.waitpid(pid, 0)
    execution.stop()
    assert answer == b"01"


def test_every_path_answers_options_with_its_methods(
    make: MakeClient, alice: FakeIdentity
) -> None:
    provider, client = make(
        log=_log, resume=lambda action, caller: None, enumerate=lambda q, c: []
    )
    action_id = client.run(alice, {"input_string": "hi"}).json["action_id"]
    expected = {
        "/": "GET, HEAD, OPTIONS",
        "/ready": "GET, HEAD, OPTIONS",
        "/openapi.json": "GET, HEAD, OPTIONS",
        "/run": "OPTIONS, POST",
        "/actions": "GET, HEAD, OPTIONS, POST",
        f"/actions/{action_id}": "DELETE, GET, HEAD, OPTIONS",
        f"/{action_id}/status": "GET, HEAD, OPTIONS",
        f"/actions/{action_id}/cancel": "OPTIONS, POST",
        f"/{action_id}/release": "OPTIONS, POST",
        f"/actions/{action_id}/log": "GET, HEAD, OPTIONS",
        f"/{action_id}/resume": "OPTIONS, POST",
    }
    for path, allow in expected.items():
        answer = client.call("OPTIONS", path)  # no token needed
        assert answer.status_code == 204, (path, answer.status_code)
        assert answer.content == b"", path
        assert answer.headers["allow"] == allow, path
        cors = answer.headers.get("access-control-allow-origin")
        assert cors == ("*" if path == "/" else None), path  # only the root's
    root = client.call("OPTIONS", "/")
    assert "OPTIONS" in root.headers["access-control-allow-methods"]
    # A method a path does not serve: 405, JSON, and Allow names OPTIONS too.
    refused = client.call("PUT", "/actions", alice)
    assert refused.status_code == 405 and refused.json["code"] == "MethodNotAllowed"
    assert "OPTIONS" in refused.headers["allow"]
    # Every route in the table is one the OpenAPI document describes.
    document = provider.openapi()
    for route in route_table({"log", "resume", "enumerate"}):
        if route.method != "HEAD":
            path = full_path(provider.prefix, route.path)
            assert route.method.lower() in document["paths"][path], path


def test_options_follows_the_handlers() -> None:
    allow = {
        r.path: r.headers["Allow"] for r in route_table(set()) if r.method == "OPTIONS"
    }
    assert "/actions/{action_id}/log" not in allow
    assert allow["/actions/{action_id}"] == "DELETE, GET, HEAD, OPTIONS"


def test_an_ill_formed_action_id_is_404_before_authentication(
    make: MakeClient,
) -> None:
    _, client = make()
    for path in ("/actions/" + "x" * 129, "/%7F/status", "/actions/a%20b/cancel"):
        method = "GET" if "cancel" not in path else "POST"
        answer = client.call(method, path)  # no token at all
        assert answer.status_code == 404, (path, answer.status_code)
        assert answer.json["code"] == "NotFound"
    assert client.call("GET", "/actions/well-formed").status_code == 401
