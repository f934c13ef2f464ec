"""A run abandoned mid-handler frees its request key, on both faces and stores.

A cancelled ASGI request task (a client gone, a server's shutdown grace
timeout) or a BaseException thrown out of a handler under WSGI ends the
request; the operation is closed and the same request may run again.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon.testing
import orjson
import pytest

from aptools import ActionRequest, Caller, MemoryStore, Provider, Store
from aptools.store import open_store
from aptools.testing import FakeGlobusAuth, FakeIdentity
from tests.conftest import ECHO_SCHEMA, bearer

StoreFactory = Callable[[], Store]


class _NetworkStore(MemoryStore):
    """A store that says it waits on the network: called in worker threads."""

    io_bound = True


class _AsyncStore(MemoryStore):
    """A store whose methods are ``async def``: awaited by the drivers."""

    def __init__(self) -> None:
        super().__init__()
        inner = MemoryStore()
        for name in ("reserve", "create", "abandon", "get", "update", "delete"):
            setattr(self, name, _awaitable(getattr(inner, name)))
        self.purge = _awaitable(inner.purge)  # type: ignore[method-assign]


def _awaitable(fn: Any) -> Any:
    async def call(*args: Any) -> Any:
        return fn(*args)

    return call


@pytest.fixture(params=["memory", "sqlite", "io-bound", "async"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "memory":
        return MemoryStore
    if request.param == "io-bound":
        return _NetworkStore
    if request.param == "async":
        return _AsyncStore
    return lambda: open_store(f"sqlite:///{tmp_path}/actions.db")


def _provider(auth: FakeGlobusAuth, store: Store, run: Any) -> Provider:
    provider = Provider(
        title="Cancel",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema=ECHO_SCHEMA,
        prefix="/test",
        store=store,
    )
    provider.run(run)
    return provider


_DOC = {"request_id": "same", "body": {"input_string": "hi"}}


async def _asgi_post(app: Any, who: FakeIdentity, sent: list[Any]) -> None:
    body = orjson.dumps(_DOC)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/test/run",
        "raw_path": b"/test/run",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", bearer(who)["Authorization"].encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 4000),
        "server": ("127.0.0.1", 80),
    }
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Any:
        if chunks:
            return chunks.pop()
        await asyncio.Event().wait()  # the client says nothing more

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)


def _status(sent: list[Any]) -> int:
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


def test_a_cancelled_asgi_run_frees_its_request_key(
    auth: FakeGlobusAuth, alice: FakeIdentity, new_store: StoreFactory
) -> None:
    calls: list[int] = []

    async def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(3600)  # cancelled here
        return {"ran": len(calls)}

    store = new_store()
    app = _provider(auth, store, run).asgi()

    async def scenario() -> list[Any]:
        task = asyncio.create_task(_asgi_post(app, alice, []))
        while not calls:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        again: list[Any] = []
        await _asgi_post(app, alice, again)
        return again

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = asyncio.run(scenario())
        gc.collect()
    assert _status(again) == 202, again
    assert calls == [1, 1]  # the handler ran again: the key was free
    store.close()


@pytest.mark.parametrize("thrown", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("kind", ["def", "async def"])
def test_a_base_exception_out_of_a_wsgi_run_frees_its_request_key(
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    new_store: StoreFactory,
    thrown: type[BaseException],
    kind: str,
) -> None:
    calls: list[int] = []

    def work() -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 1:
            raise thrown()
        return {"ran": len(calls)}

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        return work()

    async def run_async(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        return work()

    store = new_store()
    app = _provider(auth, store, run if kind == "def" else run_async).wsgi()
    client = falcon.testing.TestClient(app)
    with pytest.raises(thrown):
        client.simulate_post("/test/run", json=_DOC, headers=bearer(alice))
    again = client.simulate_post("/test/run", json=_DOC, headers=bearer(alice))
    assert again.status_code == 202, again.text
    assert again.json["details"] == {"ran": 2}
    store.close()


def test_a_closed_run_frees_its_key_without_yielding(
    auth: FakeGlobusAuth, alice: FakeIdentity, new_store: StoreFactory
) -> None:
    """The operation itself, as a collector or a driver closes it."""
    from aptools.protocol.effects import Call
    from aptools.protocol.operations import run as run_operation

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        return {}

    store = new_store()
    provider = _provider(auth, store, run)
    spec = provider.compile()
    client = falcon.testing.TestClient(provider.wsgi())
    faces = [
        (falcon.testing.create_req, lambda effect: effect.run()),
        (
            falcon.testing.create_asgi_req,
            lambda effect: asyncio.run(effect.run_async()),
        ),
    ]
    for number, (make_req, perform) in enumerate(faces):
        doc = {**_DOC, "request_id": f"closed-{number}"}
        req = make_req(
            method="POST",
            path="/test/run",
            headers={**bearer(alice), "Content-Type": "application/json"},
            body=orjson.dumps(doc),
        )
        op = run_operation(spec, req, None)
        effect = op.send(None)
        while not (isinstance(effect, Call) and effect.fn is run):
            effect = op.send(perform(effect))  # authenticate, read the body
        op.close()  # no "generator ignored GeneratorExit"
        # The key is free: the same request reserves anew.
        again = client.simulate_post("/test/run", json=doc, headers=bearer(alice))
        assert again.status_code == 202, again.text
    store.close()
