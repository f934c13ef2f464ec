"""status, cancel, release, log, resume, enumerate; access rules; expiry."""

from __future__ import annotations

import time
from typing import Any

import pytest

from aptools import (
    Action,
    ActionFailed,
    ActionStatus,
    Caller,
    EnumerateQuery,
    LogEntry,
    LogPage,
    LogQuery,
)
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import Client, MakeClient

GOOD = {"input_string": "hello"}


def active_run(request: Any, caller: Caller) -> ActionStatus:
    return ActionStatus.active({"step": 0}, state={"polls": 0})


def start(client: Client, who: FakeIdentity, **extra: Any) -> str:
    result = client.run(who, GOOD, request_id=extra.pop("request_id", "r1"), **extra)
    assert result.status_code == 202, result.text
    return str(result.json["action_id"])


@pytest.mark.parametrize(
    "path",
    ["/{id}/status", "/{id}/status/", "/actions/{id}", "/actions/{id}/"],
)
def test_status_on_both_api_versions(
    make: MakeClient, alice: FakeIdentity, path: str
) -> None:
    _, client = make(run=active_run)
    action_id = start(client, alice)
    result = client.call("GET", path.format(id=action_id), alice)
    assert result.status_code == 200
    assert result.json["action_id"] == action_id
    assert result.json["status"] == "ACTIVE"


def test_status_handler_refreshes_and_result_is_stored(
    make: MakeClient, alice: FakeIdentity
) -> None:
    seen: list[Action] = []

    def status(action: Action, caller: Caller) -> ActionStatus | None:
        seen.append(action)
        polls = action.state["polls"] + 1
        if polls >= 2:
            return ActionStatus.succeeded({"result": 42})
        return ActionStatus.active({"step": polls}, state={"polls": polls})

    provider, client = make(run=active_run, status=status)
    action_id = start(client, alice)
    first = client.call("GET", f"/{action_id}/status", alice).json
    assert first["status"] == "ACTIVE" and first["details"] == {"step": 1}
    second = client.call("GET", f"/actions/{action_id}", alice).json
    assert second["status"] == "SUCCEEDED" and second["details"] == {"result": 42}
    assert "completion_time" in second
    third = client.call("GET", f"/actions/{action_id}", alice).json
    assert third == second
    assert len(seen) == 2  # a finished action is never handed to the handler again
    stored = provider.store.get(action_id, time.time())
    assert stored is not None and stored.status == "SUCCEEDED"
    assert "state" not in third and "body" not in third


def test_status_handler_may_fail_the_action(
    make: MakeClient, alice: FakeIdentity
) -> None:
    def status(action: Action, caller: Caller) -> None:
        raise ActionFailed({"reason": "lost"})

    _, client = make(run=active_run, status=status)
    action_id = start(client, alice)
    doc = client.call("GET", f"/{action_id}/status", alice).json
    assert doc["status"] == "FAILED" and doc["details"] == {"reason": "lost"}


def test_unknown_and_invisible_actions_answer_alike(
    make: MakeClient, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    _, client = make(run=active_run)
    action_id = start(client, alice)
    for path in ("/{id}/status", "/{id}/cancel", "/{id}/release", "/actions/{id}"):
        method = "GET" if path.endswith(("status", "}")) else "POST"
        hidden = client.call(method, path.format(id=action_id), bob)
        unknown = client.call(method, path.format(id="no-such-action"), bob)
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json == unknown.json


def test_monitor_by_may_watch_but_not_manage(
    make: MakeClient, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    _, client = make(run=active_run)
    action_id = start(client, alice, monitor_by=[bob.urn])
    assert client.call("GET", f"/{action_id}/status", bob).status_code == 200
    assert client.call("POST", f"/{action_id}/cancel", bob).status_code == 404


def test_manage_by_may_cancel(
    make: MakeClient, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    _, client = make(run=active_run)
    action_id = start(client, alice, manage_by=[bob.urn])
    result = client.call("POST", f"/actions/{action_id}/cancel", bob)
    assert result.status_code == 200 and result.json["status"] == "FAILED"
    # manage_by does not grant monitoring: status is for creator and monitor_by
    assert client.call("GET", f"/{action_id}/status", bob).status_code == 404


def test_group_principals_on_an_action(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    carol = auth.identity("carol@example.org")
    group = auth.group(bob)
    _, client = make(run=active_run)
    action_id = start(client, alice, monitor_by=[group])
    assert client.call("GET", f"/{action_id}/status", bob).status_code == 200
    assert client.call("GET", f"/{action_id}/status", carol).status_code == 404


def test_linked_identity_is_the_creator(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    other = auth.identity("alice@university.edu")
    _, client = make(run=active_run)
    action_id = start(client, alice)
    assert client.call("GET", f"/{action_id}/status", other).status_code == 404
    auth.link(alice, other)
    fresh = auth.token(other)  # a new token: introspection sees the link
    assert client.call("GET", f"/{action_id}/status", fresh).status_code == 200


def test_default_cancel_fails_the_action(make: MakeClient, alice: FakeIdentity) -> None:
    _, client = make(run=active_run)
    action_id = start(client, alice)
    result = client.call("POST", f"/{action_id}/cancel", alice)
    assert result.status_code == 200
    assert result.json["status"] == "FAILED"
    assert "cancel" in result.json["display_status"].lower()
    assert "completion_time" in result.json
    again = client.call("POST", f"/{action_id}/cancel", alice)
    assert again.json == result.json


def test_cancel_handler_is_advisory(make: MakeClient, alice: FakeIdentity) -> None:
    calls = []

    def cancel(action: Action, caller: Caller) -> ActionStatus:
        calls.append(action.action_id)
        return ActionStatus.active(display_status="Stopping")

    _, client = make(run=active_run, cancel=cancel)
    action_id = start(client, alice)
    result = client.call("POST", f"/{action_id}/cancel", alice)
    assert (
        result.json["status"] == "ACTIVE"
        and result.json["display_status"] == "Stopping"
    )
    assert calls == [action_id]


def test_cancel_of_finished_action_changes_nothing(
    make: MakeClient, alice: FakeIdentity
) -> None:
    calls = []
    _, client = make(cancel=lambda a, c: calls.append(a))
    action_id = start(client, alice)
    result = client.call("POST", f"/{action_id}/cancel", alice)
    assert result.json["status"] == "SUCCEEDED"
    assert calls == []


def test_release_rules(make: MakeClient, alice: FakeIdentity) -> None:
    released = []
    _, client = make(run=active_run, release=lambda a, c: released.append(a.action_id))
    action_id = start(client, alice)
    busy = client.call("POST", f"/{action_id}/release", alice)
    assert busy.status_code == 409 and busy.json["code"] == "Conflict"
    client.call("POST", f"/{action_id}/cancel", alice)
    final = client.call("DELETE", f"/actions/{action_id}", alice)
    assert final.status_code == 200 and final.json["status"] == "FAILED"
    assert released == [action_id]
    for method, path in [
        ("GET", f"/{action_id}/status"),
        ("GET", f"/actions/{action_id}"),
        ("POST", f"/{action_id}/cancel"),
        ("POST", f"/{action_id}/release"),
        ("POST", f"/actions/{action_id}/release"),
    ]:
        assert client.call(method, path, alice).status_code == 404
    # The request key went with the action: the same request runs anew.
    rerun = client.run(alice, GOOD)
    assert rerun.status_code == 202 and rerun.json["action_id"] != action_id


def test_release_checks_the_status_handler_first(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make(run=active_run, status=lambda a, c: {"done": True})
    action_id = start(client, alice)
    result = client.call("POST", f"/actions/{action_id}/release", alice)
    assert result.status_code == 200 and result.json["status"] == "SUCCEEDED"


def test_expired_actions_are_gone(make: MakeClient, alice: FakeIdentity) -> None:
    provider, client = make()
    action_id = start(client, alice, release_after="PT1S")
    assert client.call("GET", f"/{action_id}/status", alice).status_code == 200
    time.sleep(1.2)
    assert client.call("GET", f"/{action_id}/status", alice).status_code == 404
    assert provider.store.purge(time.time()) == 1
    # an expired request key is free again
    assert client.run(alice, GOOD, release_after="PT1S").status_code == 202


def test_log_route_exists_only_with_a_handler(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make()
    action_id = start(client, alice)
    assert client.call("GET", f"/{action_id}/log", alice).status_code == 404
    assert client.call("GET", f"/actions/{action_id}/log", alice).status_code == 404
    # resume is always served (consent may be needed anywhere): a finished
    # action is answered as it is
    resumed = client.call("POST", f"/actions/{action_id}/resume", alice)
    assert resumed.status_code == 200 and resumed.json["status"] == "SUCCEEDED"
    # enumerate needs no handler: the store lists the caller's actions
    listed = client.call("GET", "/actions", alice, params={"status": "succeeded"})
    assert listed.status_code == 200
    assert [a["action_id"] for a in listed.json] == [action_id]


def test_log_receives_paging_arguments(make: MakeClient, alice: FakeIdentity) -> None:
    queries: list[LogQuery] = []

    def log(action: Action, caller: Caller, query: LogQuery) -> LogPage:
        queries.append(query)
        entries = [
            LogEntry(time=action.start_time, code="STEP", description=f"step {i}")
            for i in range(query.limit)
        ]
        return LogPage(entries=entries, has_next_page=True, marker="next-1")

    provider, client = make(log=log)
    assert provider.description["log_supported"] is True
    action_id = start(client, alice)
    page = client.call(
        "GET",
        f"/{action_id}/log",
        alice,
        params={"limit": "3", "reverse_order": "true", "marker": "m0"},
    )
    assert page.status_code == 200
    assert page.json["limit"] == 3 and page.json["has_next_page"] is True
    assert page.json["marker"] == "next-1"
    assert [e["description"] for e in page.json["entries"]] == [
        "step 0",
        "step 1",
        "step 2",
    ]
    client.call(
        "GET", f"/actions/{action_id}/log", alice, params={"pagination_token": "p9"}
    )
    assert queries[0] == LogQuery(limit=3, marker="m0", reverse_order=True)
    assert queries[1] == LogQuery(limit=10, marker="p9", reverse_order=False)
    bad = client.call("GET", f"/{action_id}/log", alice, params={"limit": "lots"})
    assert bad.status_code == 400


def test_resume(make: MakeClient, alice: FakeIdentity) -> None:
    def run(request: Any, caller: Caller) -> ActionStatus:
        return ActionStatus.inactive(
            {"required_scope": "x"}, display_status="Needs consent"
        )

    _, client = make(
        run=run, resume=lambda a, c: ActionStatus.active({"resumed": True})
    )
    action_id = start(client, alice)
    result = client.call("POST", f"/actions/{action_id}/resume", alice)
    assert result.status_code == 200
    assert result.json["status"] == "ACTIVE" and result.json["details"] == {
        "resumed": True
    }
    assert client.call("POST", f"/{action_id}/resume", alice).json["status"] == "ACTIVE"


def test_enumerate_filters_and_visibility(
    make: MakeClient, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    queries: list[EnumerateQuery] = []

    def enumerate_actions(query: EnumerateQuery, caller: Caller) -> list[Action]:
        queries.append(query)
        return query.actions

    def run(request: Any, caller: Caller) -> Any:
        if request.body["input_string"] == "done":
            return {"ok": True}
        return ActionStatus.active()

    _, client = make(run=run, enumerate=enumerate_actions)
    mine_active = client.run(alice, GOOD, request_id="a").json["action_id"]
    mine_done = client.run(alice, {"input_string": "done"}, request_id="b").json[
        "action_id"
    ]
    shared = client.run(bob, GOOD, request_id="c", monitor_by=[alice.urn]).json[
        "action_id"
    ]
    client.run(bob, GOOD, request_id="d")  # bob's alone

    def ids(**params: str) -> set[str]:
        result = client.call("GET", "/actions", alice, params=params)
        assert result.status_code == 200, result.text
        return {a["action_id"] for a in result.json}

    assert ids() == {mine_active}
    assert ids(status="succeeded") == {mine_done}
    assert ids(status="active,succeeded") == {mine_active, mine_done}
    assert ids(roles="monitor_by") == {shared}
    assert ids(roles="creator_id,monitor_by", status="ACTIVE") == {mine_active, shared}
    assert queries[0].statuses == {"ACTIVE"} and queries[0].roles == {"creator_id"}
    assert (
        client.call("GET", "/actions", alice, params={"status": "bogus"}).status_code
        == 400
    )
    assert (
        client.call("GET", "/actions", alice, params={"roles": "owner"}).status_code
        == 400
    )


def test_enumerate_never_returns_foreign_actions(
    make: MakeClient, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    smuggled: list[Action] = []

    def run(request: Any, caller: Caller) -> ActionStatus:
        return ActionStatus.active()

    def status(action: Action, caller: Caller) -> None:
        smuggled.append(action)

    def enumerate_actions(query: EnumerateQuery, caller: Caller) -> list[Action]:
        return [*query.actions, *smuggled]

    _, client = make(run=run, status=status, enumerate=enumerate_actions)
    bobs = client.run(bob, GOOD, request_id="x").json["action_id"]
    client.call("GET", f"/{bobs}/status", bob)
    assert smuggled
    mine = client.run(alice, GOOD, request_id="y").json["action_id"]
    result = client.call("GET", "/actions", alice)
    assert [a["action_id"] for a in result.json] == [mine]
