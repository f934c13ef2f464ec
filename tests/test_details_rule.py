"""Details given as a message string are answered inside an object, wherever
they come from: every handler that may change an action, a job's result and
its reports, and log entries (WSGI and ASGI)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from aptools import (
    Action,
    ActionFailed,
    ActionStatus,
    Caller,
    EnumerateQuery,
    Job,
    LogEntry,
    LogPage,
    MemoryStore,
    Provider,
)
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import Client, MakeClient
from .pg import eventually

TEXT = "quota exceeded"
MESSAGE = {"message": TEXT}


def _status_object(action: Action) -> Any:
    return ActionStatus.failed(TEXT)


def _constructed(action: Action) -> Any:
    return ActionStatus(status="FAILED", details=TEXT)  # type: ignore[arg-type]


def _raised(action: Action) -> Any:
    raise ActionFailed(TEXT)


def _action_returned(action: Action) -> Any:
    action.status, action.details = "FAILED", TEXT  # type: ignore[assignment]
    return action


def _changed_in_place(action: Action) -> Any:
    action.details = TEXT  # type: ignore[assignment]
    return None


WAYS = {
    "ActionStatus.failed": _status_object,
    "ActionStatus(details=str)": _constructed,
    "raise ActionFailed": _raised,
    "the action returned": _action_returned,
    "the action changed in place": _changed_in_place,
}


# An enumerate handler answers a list of actions: it changes them, or not.
HANDLER_CASES = [
    pytest.param(operation, way, id=f"{operation}-{way}")
    for operation in ("status", "cancel", "resume", "enumerate")
    for way in WAYS
    if operation != "enumerate" or way.startswith("the action")
]


@pytest.mark.parametrize(("operation", "way"), HANDLER_CASES)
def test_a_handler_s_message_string_is_answered_as_an_object(
    make: MakeClient, alice: FakeIdentity, operation: str, way: str
) -> None:
    answer = WAYS[way]
    first = ActionStatus.inactive() if operation == "resume" else ActionStatus.active()
    handlers: dict[str, Any] = {"run": lambda request, caller: first}
    if operation == "enumerate":

        def enumerate_actions(query: EnumerateQuery, caller: Caller) -> list[Action]:
            listed = list(query.actions)
            for action in listed:
                answer(action)
            return listed

        handlers["enumerate"] = enumerate_actions
    else:
        handlers[operation] = lambda action, caller: answer(action)
    _, client = make(**handlers)
    action_id = client.run(alice, {"input_string": "hi"}).json["action_id"]
    if operation == "enumerate":
        reply = client.call(
            "GET", "/actions", alice, params={"status": "active,failed"}
        )
        assert reply.status_code == 200, reply.text
        (doc,) = reply.json
    else:
        method = "GET" if operation == "status" else "POST"
        path = (
            f"/actions/{action_id}"
            if operation == "status"
            else f"/actions/{action_id}/{operation}"
        )
        reply = client.call(method, path, alice)
        assert reply.status_code == 200, reply.text
        doc = reply.json
    assert doc["details"] == MESSAGE
    # And so it was stored.
    again = client.call("GET", f"/{action_id}/status", alice)
    assert again.json["details"] == MESSAGE


@pytest.mark.parametrize(
    "way", ["ActionStatus.failed", "ActionStatus(details=str)", "raise ActionFailed"]
)
def test_run_s_message_string_is_answered_as_an_object(
    make: MakeClient, alice: FakeIdentity, way: str
) -> None:
    answer = WAYS[way]
    _, client = make(run=lambda request, caller: answer(None))  # type: ignore[arg-type]
    reply = client.run(alice, {"input_string": "hi"})
    assert reply.status_code == 202, reply.text
    assert reply.json["status"] == "FAILED"
    assert reply.json["details"] == MESSAGE


def test_log_entries_details_are_objects(make: MakeClient, alice: FakeIdentity) -> None:
    page = LogPage(
        entries=[
            LogEntry(
                time="2026-01-01T00:00:00+00:00",
                code="A",
                description="a",
                details=TEXT,
            ),
            {
                "time": "2026-01-01T00:00:01+00:00",
                "code": "B",
                "description": "b",
                "details": TEXT,
            },
            {"time": "2026-01-01T00:00:02+00:00", "code": "C", "description": "c"},
        ]
    )
    _, client = make(log=lambda action, caller, query: page)
    action_id = client.run(alice, {"input_string": "hi"}).json["action_id"]
    reply = client.call("GET", f"/actions/{action_id}/log", alice)
    assert reply.status_code == 200, reply.text
    entries = reply.json["entries"]
    assert [e.get("details") for e in entries] == [MESSAGE, MESSAGE, None]
    assert "details" not in entries[2]


@pytest.fixture
def job_client(auth: FakeGlobusAuth, flavour: str) -> Any:
    made: list[Provider] = []

    def build(work: Any) -> Client:
        provider = Provider(
            title="Jobs",
            scope=auth.scope,
            admin_contact="admin@example.org",
            input_schema={"type": "object"},
            prefix="/jobs",
            store=MemoryStore(),
            job_poll_interval=0.05,
        )
        provider.job()(work)
        made.append(provider)
        return Client(
            provider.wsgi() if flavour == "wsgi" else provider.asgi(), provider.prefix
        )

    yield build
    for provider in made:
        provider.compile().execution.stop()


def _finished(client: Client, who: FakeIdentity, action_id: str) -> dict[str, Any]:
    reply = eventually(
        lambda: client.call("GET", f"/actions/{action_id}", who),
        lambda r: r.json["status"] in ("SUCCEEDED", "FAILED"),
    )
    doc: dict[str, Any] = reply.json
    return doc


@pytest.mark.parametrize(
    "way", ["ActionStatus.failed", "ActionStatus(details=str)", "raise ActionFailed"]
)
def test_a_job_s_message_string_is_answered_as_an_object(
    job_client: Any, alice: FakeIdentity, way: str
) -> None:
    answer = WAYS[way]

    def work(action: Action, caller: Caller, job: Job) -> Any:
        return answer(action)

    client = job_client(work)
    action_id = client.run(alice, {}).json["action_id"]
    doc = _finished(client, alice, action_id)
    assert doc["status"] == "FAILED"
    assert doc["details"] == MESSAGE


def test_a_job_s_progress_as_a_message_string(
    job_client: Any, alice: FakeIdentity
) -> None:
    reported, finish = threading.Event(), threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> Any:
        job.progress(
            details="halfway",
            log={"code": "HALF", "description": "h", "details": "half"},
        )
        reported.set()
        finish.wait(30)
        return {"done": True}

    client = job_client(work)
    action_id = client.run(alice, {}).json["action_id"]
    try:
        assert reported.wait(30)
        doc = eventually(
            lambda: client.call("GET", f"/actions/{action_id}", alice),
            lambda r: r.json["details"] != {},
        ).json
        assert doc["status"] == "ACTIVE"
        assert doc["details"] == {"message": "halfway"}
        log = client.call("GET", f"/actions/{action_id}/log", alice).json
        assert log["entries"][-1]["details"] == {"message": "half"}
    finally:
        finish.set()
    assert _finished(client, alice, action_id)["details"] == {"done": True}
