"""Operations as units: driven on falcon.testing request objects of both flavours."""

from __future__ import annotations

import asyncio
from typing import Any

import falcon.testing
import orjson
import pytest

from aptools import ActionStatus, MemoryStore, NotFound, Unauthorized
from aptools.faces.drivers import drive, drive_async
from aptools.protocol import operations as ops
from aptools.protocol.effects import Await, Blocking, store_call
from aptools.protocol.routes import ROUTES
from aptools.protocol.spec import Reply, Spec
from aptools.testing import FakeIdentity
from tests.conftest import MakeClient, bearer


def _call(
    flavour: str,
    spec: Spec,
    op: Any,
    who: FakeIdentity | None = None,
    action_id: str | None = None,
    body: Any = None,
    query: str = "",
) -> Reply:
    headers = {"Content-Type": "application/json", **(bearer(who) if who else {})}
    data = b"" if body is None else orjson.dumps(body)
    # As the faces do: the route's declared values are read before the operation.
    route = next(r for r in ROUTES if r.operation is op)
    if flavour == "wsgi":
        req = falcon.testing.create_req(headers=headers, body=data, query_string=query)
        route.read(req, action_id)
        result: Reply = drive(op(spec, req, action_id))
        return result
    req = falcon.testing.create_asgi_req(headers=headers, body=data, query_string=query)
    route.read(req, action_id)
    return asyncio.run(drive_async(op(spec, req, action_id)))


def test_describing_operations(make: MakeClient, flavour: str) -> None:
    provider, _ = make()
    spec = provider.compile()
    assert _call(flavour, spec, ops.introspect) == (200, spec.description)
    assert _call(flavour, spec, ops.openapi) == (200, spec.openapi)
    assert _call(flavour, spec, ops.options_root) == (204, b"")


def test_an_action_through_its_operations(
    make: MakeClient, flavour: str, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    provider, _ = make(
        run=lambda request, caller: ActionStatus.active({"step": 1}),
        synchronous=False,
    )
    spec = provider.compile()
    document = {"request_id": "unit", "body": {"input_string": "hi"}}
    status, data = _call(flavour, spec, ops.run, alice, body=document)
    assert status == 202
    action_id = orjson.loads(data)["action_id"]
    assert _call(flavour, spec, ops.run, alice, body=document) == (200, data)
    status, data = _call(flavour, spec, ops.status, alice, action_id)
    assert status == 200 and orjson.loads(data)["details"] == {"step": 1}
    with pytest.raises(NotFound):
        _call(flavour, spec, ops.status, bob, action_id)
    with pytest.raises(Unauthorized):
        _call(flavour, spec, ops.status, None, action_id)
    listed = _call(flavour, spec, ops.enumerate_actions, alice)
    assert [a["action_id"] for a in orjson.loads(listed[1])] == [action_id]
    status, data = _call(flavour, spec, ops.cancel, alice, action_id)
    assert orjson.loads(data)["display_status"] == "Canceled"
    status, data = _call(flavour, spec, ops.release, alice, action_id)
    assert status == 200
    with pytest.raises(NotFound):
        _call(flavour, spec, ops.status, alice, action_id)


class _IOStore(MemoryStore):
    io_bound = True


class _AsyncGet(MemoryStore):
    async def get(self, action_id: str, now: float) -> Any:  # type: ignore[override]
        return MemoryStore.get(self, action_id, now)


def test_the_store_call_is_chosen_by_the_store() -> None:
    local, network, awaited = (
        store_call(MemoryStore()),
        store_call(_IOStore()),
        store_call(_AsyncGet()),
    )
    assert local.in_place and not network.in_place and not awaited.in_place
    store = _AsyncGet()
    op = store_call(store)(store.get, "nothing", 0.0)
    assert isinstance(next(op), Await)  # awaited by the ASGI driver
    assert drive(store_call(store)(store.get, "nothing", 0.0)) is None
    assert store_call(store).now(store.get, "nothing", 0.0) is None
    op = network(MemoryStore().get, "nothing", 0.0)
    assert isinstance(next(op), Blocking)  # a worker thread under ASGI
    in_place = local(MemoryStore().get, "nothing", 0.0)
    with pytest.raises(StopIteration):  # answered at once, no effect
        next(in_place)


def test_an_io_bound_store_serves_both_faces(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make(store=_IOStore())
    ran = client.run(alice, {"input_string": "hi"})
    assert ran.status_code == 202
    polled = client.call("GET", f"/{ran.json['action_id']}/status", alice)
    assert polled.json["details"] == {"you_said": "hi"}
