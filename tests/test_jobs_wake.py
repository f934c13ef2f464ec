"""A job accepted by another process starts at once, not at the next poll
(PostgreSQL: LISTEN/NOTIFY; SQLite: the doorbell), a lost listener comes
back, and ``def`` jobs run on reused threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aptools import Provider, SQLiteStore, Store
from aptools.jobs.threads import JobThreads
from aptools.store.postgresql.listen import channel
from aptools.store.sqlite.doorbell import Doorbell
from aptools.testing import FakeGlobusAuth
from aptools.testing.waiting import wait_for
from tests.conftest import Client

from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    execute,
    pg_url_fixture,
    schema_fixture,
)

NAMESPACE = "wake"
#: Far longer than any wait below: a job that starts was woken, not polled.
POLL = 30.0

# Another process accepting a job as a run does, in store terms: the request
# key, the job, the action's first state, then the word to other runners.
ACCEPT = """
import sys
from aptools import Action, RequestKey, SQLiteStore, Stored
place, namespace, action_id = sys.argv[1:4]
if place.startswith("postgresql"):
    from aptools.store.postgresql import PostgreSQLStore
    root = PostgreSQLStore(place)
else:
    root = SQLiteStore(place)
store = root.for_provider(namespace)
action = Action(action_id=action_id, status="ACTIVE",
                creator_id="urn:globus:auth:identity:x", request_id=action_id,
                start_time="2027-01-15T08:00:00+00:00")
store.reserve(RequestKey(action.creator_id, action_id, "f"), action_id, 1.8e9, 60)
queue = store.jobs()
queue.enqueue(action_id, None, {"identity_id": "x", "identities": []})
store.create(Stored.of(action), action, None)
queue.announce()
root.close()
"""


def accept_elsewhere(place: str, action_id: str) -> None:
    subprocess.run(
        [sys.executable, "-c", ACCEPT, place, NAMESPACE, action_id],
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "a.db")


@pytest.fixture
def serving(
    auth: FakeGlobusAuth, flavour: str, place: str
) -> Iterator[Callable[..., tuple[Provider, Client, dict[str, threading.Event]]]]:
    made: list[Provider] = []

    def make(**kw: Any) -> tuple[Provider, Client, dict[str, threading.Event]]:
        entered: dict[str, threading.Event] = {}

        def work(action: Any, caller: Any, job: Any) -> dict[str, Any]:
            entered.setdefault(action.action_id, threading.Event()).set()
            return {}

        store: Store
        if place.startswith("postgresql"):
            from aptools.store.postgresql import PostgreSQLStore

            store = PostgreSQLStore(place)
        else:
            store = SQLiteStore(place)
        provider = Provider(
            title="Wake",
            scope=auth.scope,
            admin_contact="admin@example.org",
            input_schema={"type": "object"},
            prefix="/wake",
            store=store,
            store_namespace=NAMESPACE,
            job_poll_interval=kw.pop("poll", POLL),
            **kw,
        )
        provider.job(work)
        made.append(provider)
        app = provider.wsgi() if flavour == "wsgi" else provider.asgi()
        return provider, Client(app, provider.prefix), entered

    yield make
    for provider in made:
        provider.compile().execution.stop()
        provider.store.close()


def listeners(schema: str) -> list[int]:
    """Backends listening on the queue's channel."""
    rows = execute(
        "SELECT pid FROM pg_stat_activity WHERE query = %s",
        f'LISTEN "{channel(schema, NAMESPACE)}"',
    )
    return [pid for (pid,) in rows]


def wait_listening(place: str, request: pytest.FixtureRequest) -> None:
    if place.startswith("postgresql"):
        schema = request.getfixturevalue("schema")
        wait_for(lambda: listeners(schema), "the runner listens")
    else:
        folder = Doorbell(place, NAMESPACE).folder
        wait_for(
            lambda: os.path.isdir(folder) and os.listdir(folder),
            "the runner listens",
        )


def started(entered: dict[str, threading.Event], action_id: str) -> None:
    # Well under POLL: only a wake-up can have started it.
    wait_for(
        lambda: action_id in entered and entered[action_id].is_set(),
        f"job {action_id} started",
        timeout=POLL / 2,
    )


def test_a_job_accepted_by_another_process_starts_before_the_next_poll(
    serving: Any, place: str, request: pytest.FixtureRequest
) -> None:
    provider, _, entered = serving()
    provider.jobs.runner()
    wait_listening(place, request)
    for k in range(3):
        accept_elsewhere(place, f"elsewhere-{k}")
        started(entered, f"elsewhere-{k}")


def test_the_listener_claims_a_job_announced_elsewhere_on_its_own_thread(
    serving: Any, place: str, request: pytest.FixtureRequest
) -> None:
    # One hand-off fewer than waking the runner's thread to claim it.
    provider, _, entered = serving()
    runner = provider.jobs.runner()
    queue = runner.engine.queue
    claimed_on: dict[str, str] = {}
    plain = queue.claim

    def claim(owner: str, lease: float, limit: int) -> list[Any]:
        got = plain(owner, lease, limit)
        for one in got:
            claimed_on[one.action_id] = threading.current_thread().name
        return got

    queue.claim = claim
    wait_listening(place, request)
    accept_elsewhere(place, "elsewhere")
    started(entered, "elsewhere")
    assert claimed_on["elsewhere"] in ("aptools-jobs-listen", "aptools-jobs-doorbell")


def test_a_lost_listen_connection_comes_back(
    serving: Any, place: str, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    if not place.startswith("postgresql"):
        pytest.skip("PostgreSQL's listener connection")
    provider, _, entered = serving()
    provider.jobs.runner()
    [first] = wait_for(lambda: listeners(schema), "the runner listens")
    execute("SELECT pg_terminate_backend(%s)", first)
    # It listens again on a new connection ...
    [again] = wait_for(
        lambda: [p for p in listeners(schema) if p != first], "listening again"
    )
    assert again != first
    assert "job notifications lost" in caplog.text
    # ... and a job accepted elsewhere starts at once again.
    accept_elsewhere(place, "after-the-loss")
    started(entered, "after-the-loss")


def test_without_its_listener_the_runner_still_polls(
    serving: Any, place: str, schema: str
) -> None:
    if not place.startswith("postgresql"):
        pytest.skip("PostgreSQL's listener connection")
    provider, _, entered = serving(poll=0.2)
    provider.jobs.runner()
    wait_for(lambda: listeners(schema), "the runner listens")
    # Another process stores a job and tells nobody: the poll finds it.
    accept_elsewhere_quietly(place, "polled")
    wait_for(lambda: "polled" in entered, "the poll found the job")


def accept_elsewhere_quietly(place: str, action_id: str) -> None:
    """As :func:`accept_elsewhere`, without announcing it."""
    script = ACCEPT.replace("queue.announce()\n", "")
    assert script != ACCEPT
    subprocess.run(
        [sys.executable, "-c", script, place, NAMESPACE, action_id],
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )


# -- reused threads -----------------------------------------------------------


def test_job_threads_are_reused_one_job_after_another() -> None:
    threads = JobThreads(4)
    seen: list[int] = []
    for _ in range(50):
        done = threading.Event()

        def work(done: threading.Event = done) -> None:
            seen.append(threading.get_ident())
            done.set()

        threads.submit(work)
        assert done.wait(20)
        wait_for(lambda: threads.idle == 1, "the thread waits again")
    assert threads.started == 1
    assert len(set(seen)) == 1
    threads.close()
    wait_for(lambda: threads.idle == 0, "the idle thread ended")


def test_a_job_that_never_returns_does_not_hold_up_the_next() -> None:
    threads = JobThreads(1)
    stuck = threading.Event()
    ran = threading.Event()
    threads.submit(stuck.wait)
    threads.submit(ran.set)  # no idle thread: a new one
    assert ran.wait(20)
    assert threads.started == 2
    stuck.set()
    threads.close()


def test_an_error_escaping_the_work_leaves_the_thread_serving() -> None:
    threads = JobThreads(1)

    def fails() -> None:
        raise RuntimeError("boom")

    threads.submit(fails)
    wait_for(lambda: threads.idle == 1, "the thread waits again")
    ran = threading.Event()
    threads.submit(ran.set)
    assert ran.wait(20)
    assert threads.started == 1
    threads.close()


def test_sqlite_jobs_reuse_threads_and_their_connections(
    serving: Any, place: str, request: pytest.FixtureRequest
) -> None:
    if place.startswith("postgresql"):
        pytest.skip("SQLite keeps a connection per thread")
    provider, _, entered = serving(poll=0.05, max_jobs=2)
    runner = provider.jobs.runner()
    for k in range(30):
        accept_elsewhere_in_process(provider, f"local-{k}")
    wait_for(lambda: len(entered) == 30, "every job ran")
    # A thread per job before: 30. Reused now, at most a few beyond max_jobs
    # (one starts when a job comes while the last thread is not yet idle).
    assert runner.threads.started < 10


def accept_elsewhere_in_process(provider: Provider, action_id: str) -> None:
    from aptools import Action, RequestKey, Stored

    store = provider.store.for_provider(NAMESPACE)
    action = Action(
        action_id=action_id,
        status="ACTIVE",
        creator_id="urn:globus:auth:identity:x",
        request_id=action_id,
        start_time="2027-01-15T08:00:00+00:00",
    )
    store.reserve(RequestKey(action.creator_id, action_id, "f"), action_id, 1.8e9, 60)
    queue = store.jobs()
    assert queue is not None
    queue.enqueue(action_id, None, {"identity_id": "x", "identities": []})
    store.create(Stored.of(action), action, None)
    provider.jobs.wake()
