"""A limit on the rate of one caller's runs (``max_runs_per_caller``): runs
beyond it answer 429 with an honest ``Retry-After`` and a JSON error, keep
nothing (the same request runs once retried), never refuse the replay of an
accepted request, and leave other callers alone. Counted by the store, so
two processes on one store count together. On both faces and every store."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from aptools import MemoryStore, Provider, ProviderConfigError, Store
from aptools.testing import FakeGlobusAuth, FakeIdentity
from tests.conftest import Client, MakeClient
from tests.test_jobs import new_store, store_kind  # noqa: F401 - fixtures

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures

#: Two runs at once, then one every 3 seconds.
RATE = (2, 6.0)


def _run(client: Client, who: FakeIdentity, request_id: str) -> Any:
    return client.run(who, {"input_string": request_id}, request_id=request_id)


def _refused(answer: Any) -> int:
    """The whole seconds ``answer`` (a 429) asks to wait."""
    assert answer.status_code == 429, answer.text
    assert answer.json["code"] == "TooManyRequests"
    assert "at most 2 runs per 6 seconds" in answer.json["description"]
    after = answer.headers["Retry-After"]
    assert after.isdigit(), after
    return int(after)


def test_runs_past_the_rate_wait_as_told_and_keep_nothing(
    make: MakeClient,
    new_store: Callable[[], Store],  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    bob: FakeIdentity,
) -> None:
    provider, client = make(store=new_store(), max_runs_per_caller=RATE)
    first = _run(client, alice, "r0")
    assert first.status_code == 202, first.text
    started = time.monotonic()
    assert _run(client, alice, "r1").status_code == 202
    after = _refused(_run(client, alice, "r2"))
    # Honest: no more than the 3 seconds one run refills, no less than needed.
    assert 1 <= after <= math.ceil(RATE[1] / RATE[0])
    # The replay of an accepted request is answered as ever.
    again = _run(client, alice, "r0")
    assert again.status_code == 200, again.text
    assert again.json["action_id"] == first.json["action_id"]
    # Another caller is not held up by her bucket.
    assert _run(client, bob, "r2").status_code == 202
    # Nothing of the refused request was kept: no action, no request key.
    store = provider.compile().store
    kept = store.list({"creator_id": [alice.urn]}, ["SUCCEEDED"], time.time())
    assert sorted(a.request_id for a in kept) == ["r0", "r1"]
    if time.monotonic() - started < 0.5:  # still well within the wait
        _refused(_run(client, alice, "r2"))
    time.sleep(max(0.0, started + after - time.monotonic()))
    retried = _run(client, alice, "r2")
    assert retried.status_code == 202, retried.text
    # Its run was counted: the bucket is empty again.
    _refused(_run(client, alice, "r3"))


def test_two_processes_on_one_store_count_together(
    make: MakeClient,
    new_store: Callable[[], Store],  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
) -> None:
    _, first = make(store=new_store(), max_runs_per_caller=(2, 60.0))
    _, second = make(store=new_store(), max_runs_per_caller=(2, 60.0))
    assert _run(first, alice, "a").status_code == 202
    assert _run(second, alice, "b").status_code == 202
    assert 1 <= _refused_60(_run(first, alice, "c")) <= 30
    assert 1 <= _refused_60(_run(second, alice, "c")) <= 30


def _refused_60(answer: Any) -> int:
    assert answer.status_code == 429, answer.text
    assert answer.json["code"] == "TooManyRequests"
    return int(answer.headers["Retry-After"])


def test_without_the_setting_runs_are_not_counted(
    make: MakeClient, alice: FakeIdentity
) -> None:
    class Counting(MemoryStore):
        counted = 0

        def count_run(self, identity_id: str, runs: int, per: float) -> float:
            Counting.counted += 1
            return super().count_run(identity_id, runs, per)

    _, client = make(store=Counting())
    for k in range(5):
        assert _run(client, alice, f"n{k}").status_code == 202
    assert Counting.counted == 0


def test_counters_at_once_never_take_more_than_the_bucket_holds(
    new_store: Callable[[], Store],  # noqa: F811 - the fixture imported above
) -> None:
    stores = [new_store().for_provider("rate") for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    waits: list[float] = []
    lock = threading.Lock()

    def count(store: Store) -> None:
        barrier.wait(30)
        for _ in range(3):
            wait = store.count_run("alice", 5, 600.0)
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=count, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(waits) == 18
    assert waits.count(0.0) == 5
    # Each refused count says when the next run is taken: a step of 120 s
    # (from the time its process read, a moment before a count at once).
    assert all(0 < w <= 121.0 for w in waits if w), waits
    assert stores[0].count_run("bob", 5, 600.0) == 0.0  # his own bucket
    other = new_store().for_provider("another provider")
    assert other.count_run("alice", 5, 600.0) == 0.0  # its own namespace


def test_a_bucket_refills_and_the_purge_keeps_live_ones(
    new_store: Callable[[], Store],  # noqa: F811 - the fixture imported above
) -> None:
    store = new_store().for_provider("rate")
    assert store.count_run("alice", 1, 0.5) == 0.0
    wait = store.count_run("alice", 1, 0.5)
    assert 0 < wait <= 0.5
    store.purge(time.time())  # her bucket is not full yet: kept
    assert store.count_run("alice", 1, 0.5) > 0
    time.sleep(wait + 0.05)
    assert store.count_run("alice", 1, 0.5) == 0.0
    time.sleep(0.6)
    store.purge(time.time())  # full again: as good as none
    assert store.count_run("alice", 1, 0.5) == 0.0
    assert store.count_run("alice", 1, 0.5) > 0


def _provider(auth: FakeGlobusAuth, **kw: Any) -> Provider:
    return Provider(
        title="Rate",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema={"type": "object"},
        **kw,
    )


@pytest.mark.parametrize(
    "bad", [5, (0, 60), (1.5, 60), (True, 60), (3, 0), (3, -1), (3, "60"), (1, 2, 3)]
)
def test_the_rate_is_runs_and_seconds(auth: FakeGlobusAuth, bad: Any) -> None:
    with pytest.raises(ProviderConfigError, match="max_runs_per_caller"):
        _provider(auth, store="memory:", max_runs_per_caller=bad)


def test_a_store_that_cannot_count_runs_is_refused(auth: FakeGlobusAuth) -> None:
    class Uncounting(MemoryStore):
        count_run = Store.count_run  # as a store without it

    provider = _provider(auth, store=Uncounting(), max_runs_per_caller=(1, 1))
    provider.run(lambda request, caller: {})
    with pytest.raises(ProviderConfigError, match="counts runs"):
        provider.compile()


@pytest.mark.parametrize(("value", "rate"), [("", "None"), ("30/60", "(30, 60.0)")])
def test_the_longjob_example_reads_its_rate_from_the_environment(
    value: str, rate: str
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
        "LONGJOB_MAX_RUNS_PER_CALLER": value,
    }
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from examples.longjob.app import provider as p;"
            "print(p.compile().run_rate)",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == rate
