"""One process holds a job at a time, by construction: resumes at once run
the job once, a holder whose job was taken over can write nothing and learns
it before its next step, and deadlines hold for every unfinished action.
On both faces and on memory, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import falcon.asgi
import falcon.testing
import pytest

from aptools import (
    Action,
    ActionStatus,
    Caller,
    Job,
    JobLost,
    Provider,
    RequestKey,
    Store,
    Stored,
)
from aptools.testing import FakeGlobusAuth, FakeIdentity
from aptools.testing.waiting import wait_for
from tests.conftest import Client, bearer
from tests.test_jobs import (  # noqa: F401 - fixtures
    Build,
    Gate,
    build,
    new_store,
    status,
    store_kind,
)

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures


def _deadline(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _resume(client: Client, who: FakeIdentity, action_id: str) -> Any:
    return client.call("POST", f"/{action_id}/resume", who)


def _at_once(client: Client, who: FakeIdentity, path: str, n: int) -> list[Any]:
    """``n`` POSTs to ``path`` at once: in threads under WSGI, on one event
    loop under ASGI (where the store's calls may run in threads)."""
    if isinstance(client.app, falcon.asgi.App):

        async def together() -> list[Any]:
            async with falcon.testing.ASGIConductor(client.app) as conductor:
                return list(
                    await asyncio.gather(
                        *(
                            conductor.simulate_post(
                                client.prefix + path, headers=bearer(who)
                            )
                            for _ in range(n)
                        )
                    )
                )

        return asyncio.run(together())
    barrier = threading.Barrier(n)
    answers: list[Any] = [None] * n

    def post(k: int) -> None:
        barrier.wait(30)
        answers[k] = client.call("POST", path, who)

    threads = [threading.Thread(target=post, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_resumes_at_once_run_the_job_once(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
) -> None:
    starts: list[float] = []
    running = [0, 0]  # now, most at once
    lock = threading.Lock()
    gate = Gate()

    def work(action: Action, caller: Caller, job: Job) -> Any:
        with lock:
            starts.append(time.monotonic())
            if len(starts) == 1:
                return ActionStatus.inactive(display_status="Waiting")
            running[0] += 1
            running[1] = max(running)
        try:
            gate.step(job)
            return {"done": True}
        finally:
            with lock:
                running[0] -= 1

    _, client = build(work, lease=30.0)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    wait_for(lambda: status(client, alice, action_id)["status"] == "INACTIVE", "1")
    answers = _at_once(client, alice, f"/{action_id}/resume", 8)
    # Every resume is answered with the action as the winner left it.
    assert [a.status_code for a in answers] == [200] * 8
    assert {a.json["status"] for a in answers} == {"ACTIVE"}
    wait_for(lambda: len(starts) == 2, "the resumed job started")
    gate.go.release()
    done = wait_for(
        lambda: (d := status(client, alice, action_id))["status"] == "SUCCEEDED" and d,
        "the job ended",
    )
    assert done["details"] == {"done": True}
    assert len(starts) == 2 and running[1] == 1


def _claimed_job(store: Store, lease: float) -> Job:
    """A job of a stored ACTIVE action, claimed with ``lease`` (as a runner
    would hand it to the job function)."""
    queue = store.jobs()
    assert queue is not None
    action = Action(
        action_id="a1",
        status="ACTIVE",
        creator_id="urn:globus:auth:identity:0",
        request_id="r1",
        start_time=datetime.now(UTC).isoformat(),
    )
    queue.enqueue("a1", None, {"identity_id": "0", "identities": []})
    key = RequestKey(action.creator_id, action.request_id, "f")
    assert store.reserve(key, "a1", time.time(), 60).outcome == "new"
    store.create(Stored.of(action), action, None)
    sent = time.monotonic()
    [claimed] = queue.claim("stalled", lease, 1)
    return Job(
        action=action,
        queue=queue,
        fence=claimed.fence,
        checkpoint=None,
        attempt=claimed.attempts,
        lease=lease,
        claimed_at=sent,
    )


def test_a_holder_taken_over_learns_it_before_its_next_step(
    new_store: Callable[[], Store],  # noqa: F811 - the fixture imported above
) -> None:
    store = new_store().for_provider("p")
    job = _claimed_job(store, lease=0.3)
    job.progress({"step": 1})
    queue = store.jobs()
    assert queue is not None
    # Frozen past its lease (no heartbeat): another process takes the job.
    taken = wait_for(lambda: queue.claim("alive", 600, 1), "a take-over")
    # The stale holder, going on, is told before its next step...
    assert job.wait(0) is True
    assert job.lost and job.canceled
    with pytest.raises(JobLost):
        job.raise_if_canceled()
    # ...and every write it still tries is refused, changing nothing.
    with pytest.raises(JobLost):
        job.progress({"step": 2})
    with pytest.raises(JobLost):
        job.save_checkpoint(2)
    found = store.get("a1", time.time())
    assert found is not None and found.action().details == {"step": 1}
    assert taken[0].checkpoint is None
    queue.checkpoint(taken[0].fence, b"1")  # the new holder's writes go on


def test_a_holder_late_to_renew_but_not_taken_over_goes_on(
    new_store: Callable[[], Store],  # noqa: F811 - the fixture imported above
) -> None:
    store = new_store().for_provider("p")
    job = _claimed_job(store, lease=0.3)
    time.sleep(0.4)  # its lease ran out, and nobody took the job
    assert job.wait(0) is False  # it asked the store, which renewed the lease
    assert not job.lost
    job.progress({"step": 1})
    queue = store.jobs()
    assert queue is not None
    assert queue.claim("other", 600, 1) == []  # renewed: still held


def test_an_inactive_action_of_a_run_handler_ends_at_its_deadline(
    auth: FakeGlobusAuth,
    flavour: str,
    alice: FakeIdentity,
    new_store: Any,  # noqa: F811 - the fixture imported above
) -> None:
    provider = Provider(
        title="Late",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema={"type": "object"},
        prefix="/late",
        store=new_store(),
    )

    @provider.run
    def run(request: Any, caller: Caller) -> ActionStatus:
        return ActionStatus.inactive(display_status="Waiting for you")

    @provider.status
    def refresh(action: Action, caller: Caller) -> Action:
        return action

    app = provider.wsgi() if flavour == "wsgi" else provider.asgi()
    client = Client(app, provider.prefix)
    try:
        ran = client.run(alice, {}, deadline=_deadline(1.0))
        assert ran.status_code == 202 and ran.json["status"] == "INACTIVE"
        action_id = ran.json["action_id"]
        late = wait_for(
            lambda: (
                (d := status(client, alice, action_id))["status"] != "INACTIVE" and d
            ),
            "the deadline passed",
        )
        assert (late["status"], late["display_status"]) == ("FAILED", "Deadline passed")
        resumed = _resume(client, alice, action_id)
        assert resumed.status_code == 200 and resumed.json == late
        # Resume itself ends a late action, read or not since its deadline.
        again = client.run(alice, {}, request_id="r2", deadline=_deadline(1.0))
        other = again.json["action_id"]
        time.sleep(1.2)
        answer = _resume(client, alice, other)
        assert answer.json["status"] == "FAILED"
        assert answer.json["display_status"] == "Deadline passed"
    finally:
        provider.compile().execution.stop()
        provider.store.close()


def test_a_waiting_job_is_not_resumed_past_its_deadline(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
) -> None:
    starts: list[int] = []

    def work(action: Action, caller: Caller, job: Job) -> Any:
        starts.append(1)
        return ActionStatus.inactive(display_status="Waiting")

    _, client = build(work, lease=30.0)
    ran = client.run(alice, {"n": 1}, deadline=_deadline(1.0))
    action_id = ran.json["action_id"]
    wait_for(lambda: status(client, alice, action_id)["status"] == "INACTIVE", "1")
    deadline = datetime.fromisoformat(ran.json["start_time"]).timestamp() + 1.0
    time.sleep(max(0.0, deadline - time.time()) + 0.2)  # a deadline is a time
    resumed = _resume(client, alice, action_id)
    assert resumed.status_code == 200
    assert (resumed.json["status"], resumed.json["display_status"]) == (
        "FAILED",
        "Deadline passed",
    )
    assert _resume(client, alice, action_id).json == resumed.json
    assert status(client, alice, action_id) == resumed.json
    assert starts == [1]  # never started again


def test_an_active_action_of_a_run_handler_ends_at_its_deadline(
    auth: FakeGlobusAuth,
    flavour: str,
    alice: FakeIdentity,
    new_store: Any,  # noqa: F811 - the fixture imported above
) -> None:
    provider = Provider(
        title="Late",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema={"type": "object"},
        prefix="/late",
        store=new_store(),
    )

    @provider.run
    def run(request: Any, caller: Caller) -> ActionStatus:
        return ActionStatus.active({"started": True})

    app = provider.wsgi() if flavour == "wsgi" else provider.asgi()
    client = Client(app, provider.prefix)
    try:
        ran = client.run(alice, {}, deadline=_deadline(1.0))
        action_id = ran.json["action_id"]
        # No status handler: the status read itself ends it at its deadline.
        late = wait_for(
            lambda: (d := status(client, alice, action_id))["status"] != "ACTIVE" and d,
            "the deadline passed",
        )
        assert (late["status"], late["display_status"]) == ("FAILED", "Deadline passed")
        assert late["details"] == {"started": True}
        listed = client.call("GET", "/actions?status=FAILED", alice).json
        assert [a["action_id"] for a in listed] == [action_id]
    finally:
        provider.compile().execution.stop()
        provider.store.close()
