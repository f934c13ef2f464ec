"""One rule for every handler result: string details, None from run,
completion_time, and enumerate answering only what its filter asks."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aptools import Action, ActionFailed, ActionStatus, Caller, EnumerateQuery
from aptools.testing import FakeIdentity
from tests.conftest import MakeClient

HI = {"input_string": "hi"}


def _raise_failed(request: Any, caller: Any) -> Any:
    raise ActionFailed("disk full")


@pytest.mark.parametrize(
    "run",
    [
        _raise_failed,
        lambda request, caller: ActionStatus.failed("disk full"),
        lambda request, caller: ActionStatus(status="FAILED", details="disk full"),
        lambda request, caller: ActionStatus.failed({"message": "disk full"}),
    ],
)
def test_a_message_string_fails_the_action_inside_an_object(
    make: MakeClient, alice: FakeIdentity, run: Any
) -> None:
    _, client = make(run=run)
    answer = client.run(alice, HI)
    assert answer.status_code == 202, answer.text
    assert answer.json["status"] == "FAILED"
    assert answer.json["details"] == {"message": "disk full"}


def test_string_details_from_a_status_handler(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make(
        run=lambda request, caller: ActionStatus.active("started"),
        status=lambda action, caller: ActionStatus.succeeded("all done"),
    )
    ran = client.run(alice, HI)
    assert ran.json["details"] == {"message": "started"}
    polled = client.call("GET", f"/actions/{ran.json['action_id']}", alice)
    assert polled.json["status"] == "SUCCEEDED"
    assert polled.json["details"] == {"message": "all done"}


@pytest.mark.parametrize("details", [42, ["a"], b"bytes"])
def test_other_details_are_refused_where_they_are_made(details: Any) -> None:
    with pytest.raises(TypeError, match="details must be a dict or a message"):
        ActionStatus(status="FAILED", details=details)
    with pytest.raises(TypeError):
        ActionFailed(details)


def test_run_returning_none_is_an_error_naming_the_handler(
    make: MakeClient, alice: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    def forgetful_run(request: Any, caller: Any) -> None:
        pass

    _, client = make(run=forgetful_run, synchronous=False)
    with caplog.at_level(logging.ERROR, logger="aptools"):
        first = client.run(alice, HI)
    assert first.status_code == 500
    logged = "\n".join(
        str(r.exc_info[1]) for r in caplog.records if r.exc_info is not None
    )
    assert "forgetful_run" in logged and "returned None" in logged
    # No action was made: the request key is free, and fails alike again.
    assert client.run(alice, HI).status_code == 500
    listed = client.call("GET", "/actions", alice, params={"status": "succeeded"})
    assert listed.json == []


def test_none_from_status_keeps_the_action(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make(
        run=lambda request, caller: ActionStatus.active({"step": 1}),
        status=lambda action, caller: None,
    )
    ran = client.run(alice, HI)
    polled = client.call("GET", f"/{ran.json['action_id']}/status", alice)
    assert polled.json["status"] == "ACTIVE"
    assert polled.json["details"] == {"step": 1}


def test_a_handler_states_completion_time(
    make: MakeClient, alice: FakeIdentity
) -> None:
    started = datetime.now(UTC)
    ended = started + timedelta(seconds=5)
    _, client = make(
        run=lambda request, caller: ActionStatus.active(),
        status=lambda action, caller: ActionStatus.succeeded(
            {"ok": True}, completion_time=ended
        ),
    )
    ran = client.run(alice, HI)
    assert "completion_time" not in ran.json
    polled = client.call("GET", f"/{ran.json['action_id']}/status", alice)
    assert polled.json["status"] == "SUCCEEDED"
    assert datetime.fromisoformat(polled.json["completion_time"]) == ended


def test_completion_time_defaults_to_when_the_work_ended(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make(synchronous=True)
    before = datetime.now(UTC)
    ran = client.run(alice, HI)
    after = datetime.now(UTC)
    done = datetime.fromisoformat(ran.json["completion_time"])
    assert before <= done <= after


def test_a_naive_completion_time_is_refused(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make(
        run=lambda request, caller: ActionStatus.succeeded(
            completion_time=datetime(2026, 1, 1)
        )
    )
    assert client.run(alice, HI).status_code == 500


def test_enumerate_answers_only_the_statuses_asked_for(
    make: MakeClient, alice: FakeIdentity
) -> None:
    """A status refresh that finishes an action moves it out of ?status=active."""
    finished: set[str] = set()

    def status(action: Action, caller: Caller) -> ActionStatus | None:
        if action.action_id in finished:
            return ActionStatus.succeeded({"done": True})
        return None

    _, client = make(run=lambda request, caller: ActionStatus.active(), status=status)
    ids = [
        client.run(alice, HI, request_id=f"r{n}").json["action_id"] for n in range(3)
    ]
    finished.add(ids[0])
    active = client.call("GET", "/actions", alice, params={"status": "active"})
    assert sorted(a["action_id"] for a in active.json) == sorted(ids[1:])
    assert all(a["status"] == "ACTIVE" for a in active.json)
    done = client.call("GET", "/actions", alice, params={"status": "succeeded"})
    assert [a["action_id"] for a in done.json] == [ids[0]]


def test_an_enumerate_handler_that_changes_status_is_filtered(
    make: MakeClient, alice: FakeIdentity
) -> None:
    def enumerate_(query: EnumerateQuery, caller: Caller) -> list[Action]:
        for action in query.actions:
            action.status, action.details = "SUCCEEDED", {"late": True}
        return query.actions

    _, client = make(
        run=lambda request, caller: ActionStatus.active(), enumerate=enumerate_
    )
    client.run(alice, HI)
    active = client.call("GET", "/actions", alice, params={"status": "active"})
    assert active.status_code == 200 and active.json == []
    done = client.call("GET", "/actions", alice, params={"status": "succeeded"})
    assert [a["details"] for a in done.json] == [{"late": True}]
