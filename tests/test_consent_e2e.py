"""End to end: the longjob example meets a missing consent under real gunicorn
(2 workers) and uvicorn, over HTTP, with SQLite: INACTIVE, a restart while it
waits, consent, resume, SUCCEEDED."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from globus_sdk.scopes import TransferScopes

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .servers import Server
from .test_consent import check_waiting
from .test_jobs_e2e import kill_all, kind, longjob, wait_for  # noqa: F401 - fixture

pytestmark = pytest.mark.e2e

TRANSFER = str(TransferScopes.all)


def status(server: Server, who: FakeIdentity, action_id: str) -> dict[str, Any]:
    answer = server.call("GET", f"/actions/{action_id}", who.token)
    assert answer.status_code == 200, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def test_a_job_waits_for_consent_across_a_restart_then_resumes(
    kind: str,  # noqa: F811 - the fixture imported above
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    bob: FakeIdentity,
    tmp_path: Path,
) -> None:
    db = tmp_path / "actions.db"
    auth.withhold_consent(alice, TRANSFER)
    request = {
        "request_id": "c1",
        "body": {"steps": 3, "step_seconds": 0, "scope": TRANSFER},
    }
    first = longjob(kind, auth, db).start()
    try:
        started = first.call("POST", "/actions", alice.token, json=request)
        assert started.status_code == 202, started.text
        action_id = started.json()["action_id"]
        waiting = wait_for(
            lambda: (
                (d := status(first, alice, action_id))["status"] == "INACTIVE" and d
            ),
            "the action waits for consent",
        )
        check_waiting(waiting, auth.scope, TRANSFER)
        again = first.call("POST", "/run", alice.token, json=request)
        assert again.status_code == 200 and again.json() == waiting
    finally:
        kill_all(first)
    with longjob(kind, auth, db) as second:
        assert status(second, alice, action_id) == waiting
        refused = second.call("POST", f"/actions/{action_id}/resume", bob.token)
        assert refused.status_code == 404
        still = second.call("POST", f"/{action_id}/resume", alice.token)
        assert still.status_code == 200 and still.json()["status"] == "ACTIVE"
        check_waiting(
            wait_for(
                lambda: (
                    (d := status(second, alice, action_id))["status"] == "INACTIVE"
                    and d
                ),
                "the action waits again",
            ),
            auth.scope,
            TRANSFER,
        )
        auth.grant_consent(alice, TRANSFER)
        resumed = second.call("POST", f"/actions/{action_id}/resume", alice.token)
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["status"] == "ACTIVE"
        end = wait_for(
            lambda: (d := status(second, alice, action_id))["status"] != "ACTIVE" and d,
            "the job finished",
        )
        said = second.said()
    assert end["status"] == "SUCCEEDED", end
    assert end["details"] == {"done": 3, "steps": 3}
    assert alice.token not in said and "fake-refresh-" not in said
