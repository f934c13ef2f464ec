"""run: validation, idempotency, outcomes of the handler (WSGI and ASGI)."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from aptools import (
    ActionFailed,
    ActionRequest,
    ActionStatus,
    Caller,
    MemoryStore,
    Provider,
    ProviderConfigError,
)
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import ECHO_SCHEMA, MakeClient

GOOD = {"input_string": "hello"}


def test_run_answers_202_with_a_complete_status(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make(synchronous=True)
    result = client.run(alice, GOOD, label="greeting")
    assert result.status_code == 202
    doc = result.json
    assert doc["status"] == "SUCCEEDED"
    assert doc["details"] == {"you_said": "hello"}
    assert doc["creator_id"] == alice.urn
    assert doc["label"] == "greeting"
    assert doc["release_after"] == "P30D"
    assert doc["monitor_by"] == [] and doc["manage_by"] == []
    start = datetime.fromisoformat(doc["start_time"])
    assert start.tzinfo is not None
    assert datetime.fromisoformat(doc["completion_time"]) >= start
    assert result.headers["content-type"] == "application/json"


def test_repeat_is_200_with_the_same_action_and_no_second_run(
    make: MakeClient, alice: FakeIdentity
) -> None:
    calls = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        calls.append(request.request_id)
        return {"n": len(calls)}

    _, client = make(run=run)
    first = client.run(alice, GOOD)
    again = client.run(alice, GOOD)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json == first.json
    assert calls == ["r1"]


def test_same_request_id_with_other_content_is_409(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make()
    assert client.run(alice, GOOD).status_code == 202
    other = client.run(alice, {"input_string": "else"})
    assert other.status_code == 409
    assert other.json["code"] == "Conflict"
    assert "else" not in other.text


def test_request_ids_are_per_caller(
    make: MakeClient, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    _, client = make()
    a = client.run(alice, GOOD)
    b = client.run(bob, {"input_string": "bob's"})
    assert (a.status_code, b.status_code) == (202, 202)
    assert a.json["action_id"] != b.json["action_id"]
    assert b.json["creator_id"] == bob.urn


def test_unknown_top_level_keys_are_accepted(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make()
    result = client.run(alice, GOOD, tags=["from-a-flow"], manage_by=[bob_urn()])
    assert result.status_code == 202
    assert "tags" not in result.json


def bob_urn() -> str:
    return "urn:globus:auth:identity:6f1d4a9e-2d0b-4c55-a8f6-1b2c3d4e5f60"


@pytest.mark.parametrize(
    "document, path, rule",
    [
        ({"body": GOOD}, "$", "required"),
        ({"request_id": "r", "body": {}}, "$.body", "required"),
        (
            {"request_id": "r", "body": {"input_string": 5}},
            "$.body.input_string",
            "type",
        ),
        ({"request_id": "r", "body": "text"}, "$.body", "type"),
        (
            {"request_id": "r", "body": {"input_string": "a", "x": 1}},
            "$.body",
            "additionalProperties",
        ),
        ({"request_id": "r", "body": GOOD, "label": ""}, "$.label", "minLength"),
        ({"request_id": "r", "body": GOOD, "label": "x" * 65}, "$.label", "maxLength"),
        (
            {"request_id": "r", "body": GOOD, "monitor_by": ["someone"]},
            "$.monitor_by[0]",
            "pattern",
        ),
        (
            {"request_id": "r", "body": GOOD, "manage_by": [bob_urn(), bob_urn()]},
            "$.manage_by",
            "uniqueItems",
        ),
        (
            {"request_id": "r", "body": GOOD, "release_after": "30 days"},
            "$.release_after",
            "pattern",
        ),
        (
            {"request_id": "r", "body": GOOD, "deadline": "tomorrow"},
            "$.deadline",
            "format",
        ),
        ({"request_id": 7, "body": GOOD}, "$.request_id", "type"),
        ([1, 2], "$", "type"),
    ],
)
def test_invalid_documents_name_path_and_rule(
    make: MakeClient, alice: FakeIdentity, document: Any, path: str, rule: str
) -> None:
    _, client = make()
    result = client.call("POST", "/run", alice, body=orjson.dumps(document))
    assert result.status_code == 400
    assert result.json["code"] == "RequestValidationError"
    description = result.json["description"]
    assert description.startswith(path + ":")
    assert repr(rule) in description


def test_user_values_are_not_echoed_unless_opted_in(
    make: MakeClient, alice: FakeIdentity
) -> None:
    secret = "sensitive-value-123"
    _, client = make()
    result = client.run(alice, {"input_string": "ok", secret: 1})
    assert result.status_code == 400 and secret not in result.text
    result = client.run(alice, {"input_string": 5}, label=secret * 10)
    assert secret not in result.text

    _, echoing = make(echo_input=True)
    result = echoing.run(alice, {"input_string": "ok", secret: 1})
    assert result.status_code == 400 and secret in result.text


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"request_id": "\xed\xa0\x80", "body": {}}', "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    ],
)
def test_unreadable_bodies_are_400(
    make: MakeClient, alice: FakeIdentity, raw: bytes, reason: str
) -> None:
    _, client = make()
    result = client.call("POST", "/run", alice, body=raw)
    assert result.status_code == 400
    assert result.json["code"] == "BadRequest"
    assert reason in result.json["description"]


def test_body_over_the_limit_is_413(make: MakeClient, alice: FakeIdentity) -> None:
    _, client = make(max_body_size=2048)
    big = {"request_id": "r", "body": {"input_string": "x" * 4096}}
    result = client.call("POST", "/run", alice, body=orjson.dumps(big))
    assert result.status_code == 413
    assert result.json["code"] == "PayloadTooLarge"
    small = {"request_id": "r", "body": {"input_string": "x" * 100}}
    assert (
        client.call("POST", "/run", alice, body=orjson.dumps(small)).status_code == 202
    )


def test_default_limit_is_one_mebibyte(make: MakeClient, alice: FakeIdentity) -> None:
    _, client = make()
    big = {"request_id": "r", "body": {"input_string": "x" * (1024 * 1024)}}
    assert client.call("POST", "/run", alice, body=orjson.dumps(big)).status_code == 413


def test_deadline_beyond_maximum_is_rejected(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make(maximum_deadline="PT1H")
    late = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    result = client.run(alice, GOOD, deadline=late)
    assert result.status_code == 422
    assert result.json["code"] == "UnprocessableEntity"
    assert result.json["description"].startswith("$.deadline:")
    soon = (
        (datetime.now(UTC) + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    )
    assert client.run(alice, GOOD, request_id="r2", deadline=soon).status_code == 202


def test_request_fields_reach_the_handler(
    make: MakeClient, alice: FakeIdentity
) -> None:
    seen: list[ActionRequest] = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        seen.append(request)
        assert caller.identity_urn == alice.urn
        return {}

    _, client = make(run=run)
    result = client.run(
        alice,
        GOOD,
        label="L",
        monitor_by=[bob_urn()],
        release_after="PT1H",
        allowed_clients=["creator"],
    )
    assert result.status_code == 202
    (request,) = seen
    assert request.action_id == result.json["action_id"]
    assert request.body == GOOD and request.label == "L"
    assert request.monitor_by == (bob_urn(),)
    assert request.allowed_clients == ("creator",)
    assert result.json["release_after"] == "PT1H"
    assert result.json["monitor_by"] == [bob_urn()]


def test_action_failed_makes_a_failed_action(
    make: MakeClient, alice: FakeIdentity
) -> None:
    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        raise ActionFailed({"error": "no such file"}, display_status="Missing input")

    _, client = make(run=run)
    result = client.run(alice, GOOD)
    assert result.status_code == 202
    assert result.json["status"] == "FAILED"
    assert result.json["details"] == {"error": "no such file"}
    assert result.json["display_status"] == "Missing input"
    assert "completion_time" in result.json


def test_async_handlers_work(make: MakeClient, alice: FakeIdentity) -> None:
    async def run(request: ActionRequest, caller: Caller) -> ActionStatus:
        await asyncio.sleep(0)
        return ActionStatus.active({"step": 1}, display_status="Working")

    _, client = make(run=run)
    result = client.run(alice, GOOD)
    assert result.status_code == 202
    assert result.json["status"] == "ACTIVE"
    assert result.json["display_status"] == "Working"
    assert "completion_time" not in result.json


def test_crash_is_a_generic_500_with_traceback_in_log_and_frees_the_key(
    make: MakeClient, alice: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("database password is hunter2")
        return {"ok": True}

    _, client = make(run=run)
    with caplog.at_level(logging.ERROR, logger="aptools"):
        result = client.run(alice, GOOD)
    assert result.status_code == 500
    assert result.json["code"] == "InternalError"
    assert "hunter2" not in result.text
    assert "hunter2" in caplog.text and "Traceback" in caplog.text
    assert alice.token not in caplog.text
    retry = client.run(alice, GOOD)
    assert retry.status_code == 202 and retry.json["details"] == {"ok": True}


def test_synchronous_provider_must_finish_in_run(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make(synchronous=True, run=lambda r, c: ActionStatus.active())
    assert client.run(alice, GOOD).status_code == 500


def test_bad_handler_return_is_500(make: MakeClient, alice: FakeIdentity) -> None:
    _, client = make(run=lambda r, c: 42)
    assert client.run(alice, GOOD).status_code == 500


def test_handler_errors_are_answered(make: MakeClient, alice: FakeIdentity) -> None:
    from aptools import UnprocessableEntity

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        raise UnprocessableEntity("cannot reach the storage system")

    _, client = make(run=run)
    result = client.run(alice, GOOD)
    assert result.status_code == 422
    assert result.json == {
        "code": "UnprocessableEntity",
        "description": "cannot reach the storage system",
    }


def test_concurrent_identical_runs_make_one_action(
    make: MakeClient, alice: FakeIdentity, flavour: str
) -> None:
    started = []
    gate = threading.Event()

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        started.append(1)
        gate.wait(2)
        return {"n": len(started)}

    _, client = make(run=run)
    doc = {"request_id": "same", "body": GOOD}
    results: list[Any] = []
    if flavour == "wsgi":

        def call() -> None:
            results.append(client.call("POST", "/run", alice, json=doc))

        threads = [threading.Thread(target=call) for _ in range(50)]
        for t in threads:
            t.start()
        threading.Timer(0.3, gate.set).start()
        for t in threads:
            t.join()
    else:
        import falcon.testing

        async def main() -> None:
            async with falcon.testing.ASGIConductor(client.app) as conductor:
                asyncio.get_running_loop().call_later(0.3, gate.set)
                results.extend(
                    await asyncio.gather(
                        *(
                            conductor.simulate_post(
                                "/test/run",
                                json=doc,
                                headers={"Authorization": f"Bearer {alice.token}"},
                            )
                            for _ in range(50)
                        )
                    )
                )

        asyncio.run(main())
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 49 + [202]
    assert len(started) == 1
    assert len({r.json["action_id"] for r in results}) == 1


def test_runnable_by_is_enforced(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    _, client = make(runnable_by=[alice.urn])
    assert client.run(alice, GOOD).status_code == 202
    refused = client.run(bob, GOOD)
    assert refused.status_code == 403
    assert refused.json["code"] == "Forbidden"


def test_runnable_by_group(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    group = auth.group(alice)
    _, client = make(runnable_by=[group])
    before = auth.calls["my_groups"]
    assert client.run(alice, GOOD).status_code == 202
    assert auth.calls["my_groups"] == before + 1
    assert client.run(bob, GOOD).status_code == 403


def test_no_group_lookup_when_no_group_is_listed(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    _, client = make(runnable_by=[alice.urn])
    before = auth.calls["my_groups"] + auth.calls["dependent_token"]
    assert client.run(alice, GOOD).status_code == 202
    assert auth.calls["my_groups"] + auth.calls["dependent_token"] == before


def _bare_provider(auth: FakeGlobusAuth, **settings: Any) -> Provider:
    """A provider on the echo schema and a memory store, for a test to drive
    through its own client."""
    return Provider(
        title="Test provider",
        scope=auth.scope,
        admin_contact="a@example.org",
        input_schema=ECHO_SCHEMA,
        store=MemoryStore(),
        **settings,
    )


def test_blocking_sync_handler_does_not_block_the_event_loop(
    auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    import falcon.testing

    provider = _bare_provider(auth)
    other_request_answered = threading.Event()

    @provider.run
    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        # Blocks its thread until another request has been answered: that can
        # only happen if the event loop keeps serving meanwhile.
        return {"loop_was_free": other_request_answered.wait(timeout=10)}

    app = provider.asgi()
    headers = {"Authorization": f"Bearer {alice.token}"}
    answers: dict[str, Any] = {}

    async def main() -> None:
        async with falcon.testing.ASGIConductor(app) as conductor:
            await conductor.simulate_get("/no-such/status", headers=headers)  # warm

            async def slow() -> None:
                answers["run"] = await conductor.simulate_post(
                    "/run", headers=headers, json={"request_id": "s", "body": GOOD}
                )

            async def quick() -> None:
                await asyncio.sleep(0.05)
                answers["introspect"] = await conductor.simulate_get("/")
                other_request_answered.set()

            await asyncio.gather(slow(), quick())

    asyncio.run(main())
    assert answers["introspect"].status_code == 200
    assert answers["run"].json["details"] == {"loop_was_free": True}


@pytest.mark.parametrize("offload", [True, False])
def test_sync_handlers_offloaded_under_asgi_unless_told_not_to(
    make: MakeClient, alice: FakeIdentity, flavour: str, offload: bool
) -> None:
    threads: list[int] = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        threads.append(threading.get_ident())
        return {}

    _, client = make(run=run, offload_sync_handlers=offload)
    assert client.run(alice, GOOD).status_code == 202
    # Under WSGI handlers always run in the request's thread; under ASGI the
    # test client drives the app in this thread, so "in place" means here.
    in_place = flavour == "wsgi" or not offload
    assert (threads == [threading.get_ident()]) is in_place


@pytest.mark.parametrize("limit", [None, 2])
def test_handler_threads_bound_how_many_handlers_block_at_once(
    auth: FakeGlobusAuth, alice: FakeIdentity, flavour: str, limit: int | None
) -> None:
    import falcon.testing

    provider = _bare_provider(auth, handler_threads=limit)
    guard = threading.Lock()
    inside = [0, 0]  # now, most
    everyone_in = threading.Event()

    @provider.run
    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        with guard:
            inside[0] += 1
            inside[1] = max(inside[1], inside[0])
            if inside[0] == 5:
                everyone_in.set()
        # Blocks until all five calls are in, or for half a second if the pool
        # is too small for that.
        everyone_in.wait(timeout=0.5)
        with guard:
            inside[0] -= 1
        return {}

    headers = {"Authorization": f"Bearer {alice.token}"}

    def body(n: int) -> dict[str, Any]:
        return {"request_id": f"b{n}", "body": GOOD}

    if flavour == "wsgi":
        client = falcon.testing.TestClient(provider.wsgi())
        with ThreadPoolExecutor(5) as pool:
            codes = list(
                pool.map(
                    lambda n: (
                        client.simulate_post(
                            "/run", headers=headers, json=body(n)
                        ).status_code
                    ),
                    range(5),
                )
            )
    else:

        async def main() -> list[int]:
            async with falcon.testing.ASGIConductor(provider.asgi()) as conductor:
                answers = await asyncio.gather(
                    *(
                        conductor.simulate_post("/run", headers=headers, json=body(n))
                        for n in range(5)
                    )
                )
            return [a.status_code for a in answers]

        codes = asyncio.run(main())
    assert codes == [202] * 5
    # Under WSGI handlers run in the server's threads: the pool plays no part.
    assert inside[1] == (2 if limit and flavour == "asgi" else 5)


def test_handler_threads_must_be_a_positive_whole_number(auth: FakeGlobusAuth) -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ProviderConfigError, match="handler_threads"):
            _bare_provider(auth, handler_threads=bad)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "depth, accepted",
    [
        (252, True),
        (253, True),  # with the request object: 254 levels, the deepest written
        (254, False),
        (255, False),
        (600, False),
        (1022, False),
        (1023, False),  # the deepest the parser takes
        (1024, False),
        (3000, False),
    ],
)
@pytest.mark.parametrize("where", ["tags", "body"])
def test_deeply_nested_documents_are_run_or_400(
    make: MakeClient, alice: FakeIdentity, depth: int, accepted: bool, where: str
) -> None:
    # tags: a key the schema ignores; body: a schema that takes anything.
    _, client = make(input_schema={"type": "object"}, run=lambda r, c: {"ok": 1})
    inner = _nested(depth - 1) if where == "body" else _nested(depth)
    key = b'"body":{"x":' + inner + b"}" if where == "body" else b'"body":{},"tags":'
    raw = b'{"request_id":"deep",' + key + (b"" if where == "body" else inner) + b"}"
    for _ in range(2):  # and the replay of the same request
        result = client.call("POST", "/run", alice, body=raw)
        if accepted:
            assert result.status_code in (200, 202), result.text
        else:
            assert result.status_code == 400
            assert "nested too deeply (at most 254 levels" in result.json["description"]
    if accepted and where == "body":
        status = client.call("GET", f"/actions/{result.json['action_id']}", alice)
        assert status.status_code == 200
