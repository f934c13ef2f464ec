"""Fair share: a waiting action's status says its place now, not the one it
had when accepted. As the caller's earlier jobs end, a status request shows
how many of the caller's jobs are still ahead of it; once its job runs, the
"Queued" status is gone. On both faces and every store (memory and SQLite
answer status in place, PostgreSQL through the driver)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from aptools import Action, Caller, Job
from aptools.jobs.fairshare import RUNNING
from aptools.testing import FakeIdentity
from aptools.testing.waiting import wait_for
from tests.conftest import Client
from tests.test_fairshare import Gates, _run
from tests.test_jobs import (  # noqa: F401 - fixtures
    Build,
    build,
    ended,
    new_store,
    status,
    store_kind,
)

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures


def _queued(ahead: int) -> str:
    return f"Queued: {ahead} of your jobs ahead (at most 1 at once)"


def _shown(client: Client, who: FakeIdentity) -> Callable[[str], Any]:
    return lambda action_id: status(client, who, action_id).get("display_status")


def test_a_waiting_actions_status_shows_its_place_as_the_callers_jobs_end(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    bob: FakeIdentity,
) -> None:
    gates = Gates()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        if action.body.get("n") == 2:  # the last one says what it does
            job.progress(display_status="Working on it")
        return gates.work(action, caller, job)

    provider, client = build(work, max_jobs=4, max_jobs_per_caller=1, lease=2.0)
    shown = _shown(client, alice)
    try:
        mine = []
        for n in range(3):
            got = client.run(alice, {"n": n}, request_id=f"place-{n}")
            assert got.status_code == 202, got.text
            mine.append(got.json["action_id"])
        wait_for(lambda: mine[0] in gates.started, "her first job starts")
        theirs = _run(client, bob)
        # Another caller's job starts at once, past her waiting ones.
        wait_for(lambda: theirs in gates.started, "the other caller's job starts")
        assert [shown(a) for a in mine[1:]] == [_queued(1), _queued(2)]
        assert shown(mine[0]) is None or shown(mine[0]) == RUNNING
        gates.release(mine[0])
        assert ended(client, alice, mine[0])["status"] == "SUCCEEDED"
        wait_for(lambda: mine[1] in gates.started, "her second job starts")
        # One ahead now (the one running), though two were when accepted;
        # the listing says so too.
        assert shown(mine[2]) == _queued(1)
        got = client.call("GET", "/actions?status=ACTIVE", alice)
        assert got.status_code == 200, got.text
        listed = {a["action_id"]: a.get("display_status") for a in got.json}
        assert listed[mine[2]] == _queued(1) and listed[mine[1]] == RUNNING
        assert shown(mine[1]) == RUNNING
        assert mine[2] not in gates.started
        gates.release(mine[1])
        # Ended, it says neither "Queued" nor "Running" (it waited its turn).
        done = ended(client, alice, mine[1])
        assert done["status"] == "SUCCEEDED" and done.get("display_status") is None
        wait_for(lambda: mine[2] in gates.started, "her last job starts")
        # Running: the "Queued" status is gone, and the job's own takes over.
        wait_for(lambda: shown(mine[2]) == "Working on it", "the job's own status")
        assert status(client, alice, mine[2])["status"] == "ACTIVE"
        gates.release(mine[2])
        last = ended(client, alice, mine[2])  # the job's own status stays
        assert last["status"] == "SUCCEEDED"
        assert last["display_status"] == "Working on it"
    finally:
        provider.compile().execution.stop()  # no new job while the store goes
        gates.release_all()


@pytest.mark.parametrize("cap", [None, 1])
def test_a_jobs_own_queued_status_is_never_rewritten(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    cap: int | None,
) -> None:
    # A handler's own "Queued: ..." text is the handler's business.
    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        job.progress(display_status="Queued: behind the tape robot")
        job.wait(60)
        return {}

    provider, client = build(work, max_jobs=1, max_jobs_per_caller=cap, lease=2.0)
    try:
        action_id = _run(client, alice)
        wait_for(
            lambda: (
                status(client, alice, action_id).get("display_status")
                == "Queued: behind the tape robot"
            ),
            "the job's own status",
        )
        assert (
            status(client, alice, action_id)["display_status"]
            == "Queued: behind the tape robot"
        )
    finally:
        provider.compile().execution.stop()
