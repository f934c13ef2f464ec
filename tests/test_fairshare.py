"""Fair share per caller: ``max_jobs_per_caller`` caps one identity's jobs
running at once across processes and hosts, in the claim itself; the
caller's further actions are accepted and wait their turn, saying so, and
other callers' jobs are not held up. On both faces and every store, and
with two providers (two processes' views) on one database."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from aptools import Action, Caller, Job, Provider, ProviderConfigError, Store
from aptools.jobs.fairshare import RUNNING
from aptools.testing import FakeGlobusAuth, FakeIdentity
from aptools.testing.queue_contract import LONG, JobQueueContract
from aptools.testing.waiting import wait_for
from tests.conftest import Client
from tests.test_jobs import (  # noqa: F401 - fixtures
    SCHEMA,
    Build,
    build,
    ended,
    new_store,
    status,
    store_kind,
)

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures


def test_claimers_at_once_never_take_a_caller_past_the_cap(
    new_store: Callable[[], Store],  # noqa: F811 - the fixture imported above
) -> None:
    stores = [new_store().for_provider("fair") for _ in range(4)]
    queue = stores[0].jobs()
    assert queue is not None
    for k in range(8):
        who = "alice" if k < 6 else "bob"
        queue.enqueue(f"j{k}", None, {"identity_id": who, "identities": [who]})
        JobQueueContract.put(stores[0], f"j{k}")
        time.sleep(0.002)  # enqueued in this order
    barrier = threading.Barrier(len(stores))
    taken: list[list[Any]] = [[] for _ in stores]

    def claim(k: int) -> None:
        mine = stores[k].jobs()
        assert mine is not None
        barrier.wait(30)
        taken[k] = mine.claim_fair(f"p{k}", LONG, 10, 2)

    threads = [threading.Thread(target=claim, args=(k,)) for k in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    claimed = [c for got in taken for c in got]
    by_caller: dict[str, list[str]] = {}
    for c in claimed:
        by_caller.setdefault(c.caller["identity_id"], []).append(c.action_id)
    # Alice's first two (in order), and Bob's two: his are not held up.
    assert sorted(by_caller["alice"]) == ["j0", "j1"]
    assert sorted(by_caller["bob"]) == ["j6", "j7"]
    # The cap counts held jobs: none more for Alice until one ends.
    assert queue.claim_fair("later", LONG, 10, 2) == []
    assert queue.ahead("alice") == 6 and queue.ahead("bob") == 2


class Gates:
    """Jobs that run until the test lets each go."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.go: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def work(self, action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        with self._lock:
            self.started.append(action.action_id)
            gate = self.go.setdefault(action.action_id, threading.Event())
        give_up = time.monotonic() + 60
        while not gate.wait(0.02) and not job.canceled:
            if time.monotonic() > give_up:
                break
        return {"by": caller.identity_id}

    def release(self, action_id: str) -> None:
        with self._lock:
            self.go.setdefault(action_id, threading.Event()).set()

    def release_all(self) -> None:
        with self._lock:
            for gate in self.go.values():
                gate.set()


_n = iter(range(1_000_000))


def _run(client: Client, who: FakeIdentity) -> str:
    answer = client.run(who, {"n": 1}, request_id=f"f{next(_n)}")
    assert answer.status_code == 202, answer.text
    action_id: str = answer.json["action_id"]
    return action_id


def test_a_callers_jobs_past_the_cap_wait_their_turn_and_others_start_at_once(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    bob: FakeIdentity,
) -> None:
    gates = Gates()
    provider, client = build(gates.work, max_jobs=4, max_jobs_per_caller=1, lease=2.0)
    try:
        mine = [_run(client, alice) for _ in range(3)]
        theirs = _run(client, bob)
        # Bob's job starts at once, past Alice's waiting ones.
        wait_for(lambda: theirs in gates.started, "the other caller's job starts")
        assert [a for a in gates.started if a in mine] == [mine[0]]
        shown = [status(client, alice, a).get("display_status") for a in mine]
        assert shown == [
            None,
            "Queued: 1 of your jobs ahead (at most 1 at once)",
            "Queued: 2 of your jobs ahead (at most 1 at once)",
        ]
        assert all(status(client, alice, a)["status"] == "ACTIVE" for a in mine)
        gates.release(mine[0])
        assert ended(client, alice, mine[0])["status"] == "SUCCEEDED"
        wait_for(lambda: mine[1] in gates.started, "the next of hers starts")
        assert mine[2] not in gates.started
        wait_for(
            lambda: status(client, alice, mine[1])["display_status"] == RUNNING,
            "it says it runs",
        )
        gates.release(mine[1])
        wait_for(lambda: mine[2] in gates.started, "then the last")
    finally:
        provider.compile().execution.stop()  # no new job while the store goes
        gates.release_all()


def test_the_cap_holds_across_two_processes_on_one_database(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    bob: FakeIdentity,
) -> None:
    gates = Gates()
    one, first = build(gates.work, max_jobs=4, max_jobs_per_caller=2, lease=2.0)
    two, second = build(gates.work, max_jobs=4, max_jobs_per_caller=2, lease=2.0)
    try:
        mine = [_run(c, alice) for c in (first, second, first, second, first)]
        theirs = [_run(c, bob) for c in (second, first)]
        wait_for(lambda: set(theirs) <= set(gates.started), "the other's jobs start")
        # Each runner looked past Alice's waiting jobs to claim Bob's.
        assert len([a for a in gates.started if a in mine]) == 2
        for action_id in gates.started[:]:
            if action_id in mine:
                gates.release(action_id)
        wait_for(
            lambda: len([a for a in gates.started if a in mine]) == 4, "two more start"
        )
    finally:
        for provider in (one, two):  # no new job while the store goes
            provider.compile().execution.stop()
        gates.release_all()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_the_cap_is_a_positive_whole_number(auth: FakeGlobusAuth, bad: Any) -> None:
    with pytest.raises(ProviderConfigError, match="max_jobs_per_caller"):
        Provider(
            title="Fair",
            scope=auth.scope,
            admin_contact="admin@example.org",
            input_schema=SCHEMA,
            store="memory:",
            max_jobs_per_caller=bad,
        )


@pytest.mark.parametrize(("value", "cap"), [("", "None"), ("3", "3")])
def test_the_longjob_example_reads_its_cap_from_the_environment(
    value: str, cap: str
) -> None:
    from cryptography.fernet import Fernet

    from .servers import ROOT

    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "APTOOLS_STORE": "memory:",
        "APTOOLS_CLIENT_ID": "id",
        "APTOOLS_CLIENT_SECRET": "secret",
        "APTOOLS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "LONGJOB_MAX_JOBS_PER_CALLER": value,
    }
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from examples.longjob.app import provider as p;"
            "print(p.compile().jobs.per_caller)",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == cap
