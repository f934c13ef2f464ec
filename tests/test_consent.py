"""Consent, the interface's side: a missing consent makes the action INACTIVE
with the consent details, and resume goes on as the resuming caller. Both
faces, memory and SQLite stores; run, status and resume handlers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from globus_sdk.gare import to_gare
from globus_sdk.scopes import Scope, TransferScopes

from aptools import (
    Action,
    ActionRequest,
    ActionStatus,
    Caller,
    ConsentRequired,
    MemoryStore,
    SQLiteStore,
    Store,
)
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import Client, MakeClient

GOOD = {"input_string": "hello"}
TRANSFER = str(TransferScopes.all)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "consent.db")


def check_waiting(doc: dict[str, Any], provider_scope: str, scope: str) -> None:
    """``doc`` is an action INACTIVE for want of consent to ``scope``, in both
    forms clients read (the interface's and a Globus Auth Requirements Error)."""
    assert doc["status"] == "INACTIVE"
    assert "consent" in doc["display_status"].lower()
    details = doc["details"]
    needed = ConsentRequired(details["description"], required_scopes=[scope])
    assert details == needed.details(provider_scope)
    assert details["code"] == "ConsentRequired" and details["description"]
    required = Scope.parse(details["required_scope"])
    assert required.scope_string == provider_scope
    assert [str(d) for d in required.dependencies] == [scope]
    gare = to_gare(details)
    assert gare is not None and gare.code == "ConsentRequired"
    params = gare.authorization_parameters
    assert params.required_scopes == [details["required_scope"]]
    assert params.session_message == details["description"]
    assert "completion_time" not in doc


def resume(client: Client, who: FakeIdentity, action_id: str, v11: bool = True) -> Any:
    path = f"/actions/{action_id}/resume" if v11 else f"/{action_id}/resume"
    return client.call("POST", path, who)


def test_missing_consent_at_run_waits_for_resume(
    make: MakeClient,
    store: Store,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    bob: FakeIdentity,
) -> None:
    calls: list[tuple[str, ActionRequest]] = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        calls.append((caller.identity_id, request))
        token = caller.authorizer(TRANSFER).access_token
        return {"said": request.body["input_string"], "token": token[:5]}

    _, client = make(run=run, store=store)
    auth.withhold_consent(alice, TRANSFER)
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    extra = {"label": "copy", "allowed_clients": ["c1"], "deadline": soon}
    started = client.run(alice, GOOD, request_id="r", **extra)
    assert started.status_code == 202, started.text
    action_id = started.json["action_id"]
    check_waiting(started.json, auth.scope, TRANSFER)
    # the request key stays with the action: a repeat answers it, runs nothing
    again = client.run(alice, GOOD, request_id="r", **extra)
    assert again.status_code == 200 and again.json == started.json
    assert len(calls) == 1
    assert client.call("GET", f"/actions/{action_id}", alice).json == started.json
    # someone not allowed to manage it: as if there were no such action
    assert resume(client, bob, action_id).status_code == 404
    assert len(calls) == 1
    # still no consent: INACTIVE again, with the same details
    still = resume(client, alice, action_id, v11=False)
    assert still.status_code == 200 and still.json == started.json
    assert len(calls) == 2
    auth.grant_consent(alice, TRANSFER)
    before = auth.grants[TRANSFER]
    done = resume(client, alice, action_id)
    assert done.status_code == 200, done.text
    assert done.json["status"] == "SUCCEEDED"
    assert done.json["details"]["said"] == "hello"
    assert "display_status" not in done.json and "completion_time" in done.json
    assert auth.grants[TRANSFER] == before + 1
    # the handler got the stored request back, as the resuming caller
    who, request = calls[-1]
    assert who == alice.id
    assert request == calls[0][1]
    assert request.label == "copy" and request.allowed_clients == ("c1",)
    assert request.deadline is not None
    # finished: resume and a repeated run answer it as it is
    assert resume(client, alice, action_id).json == done.json
    assert client.run(alice, GOOD, request_id="r", **extra).json == done.json
    assert len(calls) == 3


def test_a_manager_resumes_as_themself(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    acted_for: list[str] = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        caller.authorizer(TRANSFER)
        acted_for.append(caller.identity_id)
        return {}

    _, client = make(run=run)
    auth.withhold_consent(alice, TRANSFER)
    manager = f"urn:globus:auth:identity:{bob.id}"
    started = client.run(alice, GOOD, manage_by=[manager])
    check_waiting(started.json, auth.scope, TRANSFER)
    done = resume(client, bob, started.json["action_id"])
    assert done.json["status"] == "SUCCEEDED"
    assert acted_for == [bob.id]


def test_a_refused_grant_and_a_synchronous_provider(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        caller.authorizer(TRANSFER)
        return {"ok": True}

    _, client = make(run=run, synchronous=True)
    auth.withhold_consent(alice, TRANSFER, refuse=True)
    started = client.run(alice, GOOD)
    assert started.status_code == 202
    check_waiting(started.json, auth.scope, TRANSFER)
    auth.grant_consent(alice, TRANSFER)
    done = resume(client, alice, started.json["action_id"])
    assert done.json["status"] == "SUCCEEDED" and done.json["details"] == {"ok": True}


@pytest.mark.parametrize("failure", [500, 503])
def test_an_outage_is_not_missing_consent(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, failure: int
) -> None:
    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        auth.fail(failure)  # after this request was authenticated
        try:
            caller.authorizer(TRANSFER)
        finally:
            auth.recover()
        return {}

    _, client = make(run=run)
    answer = client.run(alice, GOOD)
    assert answer.status_code == 503
    assert answer.json["code"] == "AuthServiceUnavailable"
    # no action was kept: the same request runs again once Globus Auth is back
    assert client.call("GET", "/actions", alice).json == []


def test_a_hanging_globus_auth_is_not_missing_consent(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        auth.hang()
        try:
            caller.authorizer(TRANSFER)
        finally:
            auth.recover()
        return {}

    _, client = make(run=run, auth_timeout=0.3)
    answer = client.run(alice, GOOD)
    assert answer.status_code == 503
    assert answer.json["code"] == "AuthServiceUnavailable"


def test_bad_provider_credentials_are_not_missing_consent(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        auth.fail(401)
        try:
            caller.authorizer(TRANSFER)
        finally:
            auth.recover()
        return {}

    _, client = make(run=run)
    answer = client.run(alice, GOOD)
    assert answer.status_code == 502
    assert answer.json["code"] == "AuthServiceError"


def test_missing_consent_in_the_status_handler(
    make: MakeClient, store: Store, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    polls: list[str] = []

    def run(request: ActionRequest, caller: Caller) -> ActionStatus:
        return ActionStatus.active({"step": 1}, display_status="Copying")

    def status(action: Action, caller: Caller) -> ActionStatus:
        polls.append(action.status)
        caller.authorizer(TRANSFER)
        return ActionStatus.succeeded({"step": action.details["step"] + 1})

    _, client = make(run=run, status=status, store=store)
    auth.withhold_consent(alice, TRANSFER)
    action_id = client.run(alice, GOOD).json["action_id"]
    polled = client.call("GET", f"/{action_id}/status", alice)
    assert polled.status_code == 200
    check_waiting(polled.json, auth.scope, TRANSFER)
    # while it waits for consent, polls answer it without the handler
    assert client.call("GET", f"/actions/{action_id}", alice).json == polled.json
    assert polls == ["ACTIVE"]
    auth.grant_consent(alice, TRANSFER)
    done = resume(client, alice, action_id)
    # retried with the action as it was before it waited
    assert polls == ["ACTIVE", "ACTIVE"]
    assert done.json["status"] == "SUCCEEDED" and done.json["details"] == {"step": 2}


def test_a_resume_handler_decides(
    make: MakeClient, store: Store, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    def run(request: ActionRequest, caller: Caller) -> ActionStatus:
        caller.authorizer(TRANSFER)
        return ActionStatus.succeeded({"by": "run"})

    def on_resume(action: Action, caller: Caller) -> ActionStatus:
        caller.authorizer(TRANSFER)
        return ActionStatus.succeeded({"by": "resume"})

    _, client = make(run=run, resume=on_resume, store=store)
    auth.withhold_consent(alice, TRANSFER)
    action_id = client.run(alice, GOOD).json["action_id"]
    still = resume(client, alice, action_id)
    check_waiting(still.json, auth.scope, TRANSFER)
    auth.grant_consent(alice, TRANSFER)
    done = resume(client, alice, action_id)
    assert done.json["status"] == "SUCCEEDED" and done.json["details"] == {
        "by": "resume"
    }


def test_resume_answers_an_action_not_waiting_as_it_is(
    make: MakeClient, alice: FakeIdentity
) -> None:
    def run(request: ActionRequest, caller: Caller) -> ActionStatus:
        if request.body["input_string"] == "pause":
            return ActionStatus.inactive({"why": "paused"}, display_status="Paused")
        return ActionStatus.active({"step": 1})

    _, client = make(run=run)
    active = client.run(alice, GOOD, request_id="a").json
    assert resume(client, alice, active["action_id"]).json == active
    paused = client.run(alice, {"input_string": "pause"}, request_id="p").json
    assert paused["status"] == "INACTIVE"
    assert resume(client, alice, paused["action_id"]).json == paused


def test_a_resume_handler_sees_only_inactive_actions(
    make: MakeClient, alice: FakeIdentity
) -> None:
    seen: list[str] = []

    def on_resume(action: Action, caller: Caller) -> ActionStatus:
        seen.append(action.status)
        return ActionStatus.active({"resumed": True})

    def run(request: ActionRequest, caller: Caller) -> ActionStatus:
        return ActionStatus.inactive({"why": "paused"}, display_status="Paused")

    _, client = make(run=run, resume=on_resume)
    action_id = client.run(alice, GOOD).json["action_id"]
    assert resume(client, alice, action_id).json["details"] == {"resumed": True}
    again = resume(client, alice, action_id)
    assert again.json["status"] == "ACTIVE"
    assert seen == ["INACTIVE"]
