"""Background jobs in process, on both faces and both stores."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.fernet import Fernet

from aptools import (
    Action,
    ActionFailed,
    ActionStatus,
    Caller,
    Job,
    MemoryStore,
    Provider,
    RequestKey,
    SQLiteStore,
    Store,
    Stored,
)
from aptools.actions import INTERRUPTED
from aptools.testing import FakeGlobusAuth, FakeIdentity, load_provider
from aptools.testing.waiting import wait_for
from tests.conftest import Client

from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    pg_url_fixture,
    schema_fixture,
)

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}}


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_store(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Store]]:
    """Stores on one database: each call is another process's view of it."""
    made: list[Store] = []
    shared = MemoryStore()
    url = request.getfixturevalue("pg_url") if store_kind == "postgresql" else ""

    def make() -> Store:
        store: Store
        if store_kind == "postgresql":
            from aptools.store.postgresql import PostgreSQLStore

            store = PostgreSQLStore(url)
        else:
            store = shared if store_kind == "memory" else SQLiteStore(tmp_path / "a.db")
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


Build = Callable[..., tuple[Provider, Client]]


@pytest.fixture
def build(
    auth: FakeGlobusAuth, flavour: str, new_store: Callable[[], Store]
) -> Iterator[Build]:
    providers: list[Provider] = []

    def make(
        work: Callable[..., Any],
        *,
        resumable: bool = False,
        lease: float = 0.6,
        keep_tokens: bool = False,
        max_attempts: int = 10,
        stop_timeout: float = 2.0,
        **kw: Any,
    ) -> tuple[Provider, Client]:
        settings: dict[str, Any] = {
            "title": "Jobs",
            "scope": auth.scope,
            "admin_contact": "admin@example.org",
            "input_schema": SCHEMA,
            "prefix": "/jobs",
            "store": new_store(),
            "job_poll_interval": 0.05,
        }
        settings.update(kw)
        provider = Provider(**settings)
        provider.job(
            resumable=resumable,
            lease=lease,
            keep_tokens=keep_tokens,
            max_attempts=max_attempts,
            stop_timeout=stop_timeout,
        )(work)
        providers.append(provider)
        app = provider.wsgi() if flavour == "wsgi" else provider.asgi()
        return provider, Client(app, provider.prefix)

    yield make
    for provider in providers:
        # The runner and the housekeeping stop; the store is left behind.
        provider.compile().execution.stop()
        provider.store.close()


def status(client: Client, who: FakeIdentity, action_id: str) -> dict[str, Any]:
    got = client.call("GET", f"/{action_id}/status", who)
    assert got.status_code == 200, got.text
    doc: dict[str, Any] = got.json
    return doc


def ended(client: Client, who: FakeIdentity, action_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (doc := status(client, who, action_id))["status"] in ("SUCCEEDED", "FAILED")
            and doc
        ),
        "the action ended",
    )


class Gate:
    """Lets a test step a job forward one step at a time."""

    def __init__(self) -> None:
        self.go = threading.Semaphore(0)
        self.saw_cancel = threading.Event()

    def step(self, job: Job) -> bool:
        while not self.go.acquire(timeout=0.02):
            if job.canceled:
                self.saw_cancel.set()
                return False
        return True


def test_run_answers_at_once_and_the_job_succeeds(
    build: Build, alice: FakeIdentity
) -> None:
    gate = Gate()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        assert caller.identity_urn == action.creator_id
        for k in range(1, action.body["n"] + 1):
            if not gate.step(job):
                return {"gave_up": k}
            job.progress({"done": k}, log={"code": "StepDone", "description": f"{k}"})
        return {"done": action.body["n"]}

    _, client = build(work)
    started = client.run(alice, {"n": 2})
    assert started.status_code == 202
    assert started.json["status"] == "ACTIVE"
    action_id = started.json["action_id"]
    gate.go.release()
    wait_for(lambda: status(client, alice, action_id)["details"] == {"done": 1}, "1")
    gate.go.release()
    doc = ended(client, alice, action_id)
    assert doc["status"] == "SUCCEEDED"
    assert doc["details"] == {"done": 2}
    assert doc["completion_time"] >= doc["start_time"]
    log = client.call("GET", f"/{action_id}/log", alice).json
    assert [e["code"] for e in log["entries"]] == ["StepDone", "StepDone"]
    # The same request again answers the same action, and starts nothing.
    again = client.run(alice, {"n": 2})
    assert again.status_code == 200
    assert again.json["action_id"] == action_id


def test_progress_is_seen_from_another_worker(
    build: Build, alice: FakeIdentity
) -> None:
    gate = Gate()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        job.progress({"done": 1}, display_status="One done")
        gate.step(job)
        return {"done": 2}

    _, first = build(work)
    _, second = build(work)
    action_id = first.run(alice, {"n": 2}).json["action_id"]
    doc = wait_for(
        lambda: (d := status(second, alice, action_id))["details"] == {"done": 1} and d,
        "progress seen by the other worker",
    )
    assert doc["display_status"] == "One done"
    gate.go.release()
    assert ended(second, alice, action_id)["details"] == {"done": 2}


def test_cancel_from_another_worker_stops_the_job_and_discards_its_result(
    build: Build, alice: FakeIdentity
) -> None:
    gate = Gate()
    running = threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        running.set()
        gate.step(job)  # returns once the job learns of the cancel
        return {"late": True}  # discarded

    _, first = build(work)
    _, second = build(work)
    action_id = first.run(alice, {"n": 1}).json["action_id"]
    wait_for(running.is_set, "the job started")
    canceled = second.call("POST", f"/{action_id}/cancel", alice)
    assert canceled.status_code == 200
    assert canceled.json["status"] == "FAILED"
    assert "cancel" in canceled.json["display_status"].lower()
    assert "completion_time" in canceled.json
    wait_for(gate.saw_cancel.is_set, "the job learned of the cancel")
    time.sleep(0.1)  # let the job's late result arrive (it must change nothing)
    doc = status(first, alice, action_id)
    assert doc["status"] == "FAILED"
    assert doc["details"] == {}
    assert doc == canceled.json


def test_a_passed_deadline_fails_the_action_and_stops_the_job(
    build: Build, alice: FakeIdentity
) -> None:
    gate = Gate()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        gate.step(job)
        return {"late": True}

    _, client = build(work)
    deadline = (datetime.now(UTC) + timedelta(seconds=0.5)).isoformat()
    started = client.call(
        "POST",
        "/run",
        alice,
        json={"request_id": "d", "body": {"n": 1}, "deadline": deadline},
    )
    action_id = started.json["action_id"]
    doc = ended(client, alice, action_id)
    assert doc["status"] == "FAILED"
    assert "deadline" in doc["display_status"].lower()
    wait_for(gate.saw_cancel.is_set, "the job was told to stop")
    assert status(client, alice, action_id) == doc


def test_action_failed_and_unexpected_errors(
    build: Build, alice: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        if action.body["n"] == 1:
            raise ActionFailed({"why": "n is 1"}, display_status="Bad n")
        raise RuntimeError("secret internals /etc/passwd")

    _, client = build(work)
    with caplog.at_level(logging.ERROR, logger="aptools.jobs"):
        first = client.run(alice, {"n": 1}, request_id="a").json["action_id"]
        second = client.run(alice, {"n": 2}, request_id="b").json["action_id"]
        failed = ended(client, alice, first)
        crashed = ended(client, alice, second)
    assert failed["status"] == "FAILED"
    assert failed["details"] == {"why": "n is 1"}
    assert failed["display_status"] == "Bad n"
    assert crashed["status"] == "FAILED"
    assert crashed["details"]["code"] == "JobFailed"
    assert "secret" not in str(crashed)
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)


@pytest.mark.parametrize("resumable", [True, False])
@pytest.mark.parametrize("how", ["returned", "raised"])
def test_a_result_that_cannot_be_stored_fails_the_action_once(
    build: Build, alice: FakeIdentity, resumable: bool, how: str
) -> None:
    runs: list[int] = []

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        runs.append(1)
        if how == "raised":
            raise ActionFailed({"error": ValueError("x")})  # no JSON for it
        return {"s": {1, 2}}  # a set: no JSON for it

    _, client = build(work, resumable=resumable, lease=0.3)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    done = ended(client, alice, action_id)
    assert done["status"] == "FAILED"
    assert done["details"]["code"] == "UnstorableOutcome"
    assert "could not be stored" in done["details"]["description"]
    time.sleep(1.0)  # several leases: a stored outcome is never run again
    assert len(runs) == 1


def test_an_async_job_is_cancelled_as_a_coroutine(
    build: Build, alice: FakeIdentity
) -> None:
    seen: list[str] = []
    running = threading.Event()

    async def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        job.progress({"phase": "sleeping"})
        running.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return {}

    _, client = build(work)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    wait_for(running.is_set, "the job started")
    assert status(client, alice, action_id)["details"] == {"phase": "sleeping"}
    client.call("POST", f"/{action_id}/cancel", alice)
    wait_for(lambda: seen == ["cancelled"], "the coroutine was cancelled")
    assert status(client, alice, action_id)["status"] == "FAILED"


def test_a_run_handler_gives_the_first_state(
    auth: FakeGlobusAuth, flavour: str, alice: FakeIdentity
) -> None:
    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        return {"first": action.details}

    provider = Provider(
        title="Jobs",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema=SCHEMA,
        prefix="/two",
        store=MemoryStore(),
    )
    provider.job(work)
    # Registered after the job: the decorators may come in any order.
    provider.run(lambda request, caller: {"n": request.body["n"]})
    client = Client(provider.wsgi() if flavour == "wsgi" else provider.asgi(), "/two")
    try:
        started = client.run(alice, {"n": 7})
        assert started.status_code == 202
        assert started.json["details"] == {"n": 7}
        done = ended(client, alice, started.json["action_id"])
        assert done["details"] == {"first": {"n": 7}}
    finally:
        provider.jobs.shutdown()  # type: ignore[union-attr]


def test_a_shutdown_hands_resumable_jobs_back_at_once_as_an_attempt(
    build: Build, alice: FakeIdentity
) -> None:
    gate = Gate()
    running = threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        running.set()
        gate.step(job)
        return {}

    provider, client = build(work, lease=3600.0, resumable=True)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    wait_for(running.is_set, "the job started")
    queue = provider.store.jobs()
    assert queue is not None
    # Held for an hour: nobody else may take it...
    assert queue.claim("elsewhere", 60, 10) == []
    provider.jobs.shutdown()  # type: ignore[union-attr]
    # ...until it is handed back, which frees it at once; the ended process
    # counts toward max_attempts.
    [taken] = queue.claim("elsewhere", 60, 10)
    assert (taken.action_id, taken.attempts) == (action_id, 2)
    assert status(client, alice, action_id)["status"] == "ACTIVE"


def test_a_shutdown_lets_a_job_that_is_not_resumable_end(
    build: Build, alice: FakeIdentity
) -> None:
    gate = Gate()
    running = threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        running.set()
        gate.step(job)
        return {"ended": True}

    provider, client = build(work, lease=3600.0, stop_timeout=60.0)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    wait_for(running.is_set, "the job started")
    stopping = threading.Thread(target=provider.jobs.shutdown)  # type: ignore[union-attr]
    stopping.start()
    queue = provider.store.jobs()
    assert queue is not None
    # Never handed back: nobody else may start it a second time...
    assert queue.claim("elsewhere", 60, 10) == []
    assert stopping.is_alive()
    gate.go.release()  # ...and it ends where it began.
    stopping.join(30)
    assert not stopping.is_alive()
    assert status(client, alice, action_id)["status"] == "SUCCEEDED"
    assert queue.claim("elsewhere", 60, 10) == []


def test_a_job_that_is_not_resumable_and_outlives_the_stop_ends_interrupted(
    build: Build, alice: FakeIdentity
) -> None:
    running = threading.Event()
    release = threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        running.set()
        release.wait(30)  # a blocking call that never looks at the job
        return {"ended": True}

    provider, client = build(work, lease=3600.0, stop_timeout=0.5)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    wait_for(running.is_set, "the job started")
    began = time.monotonic()
    provider.jobs.shutdown()  # type: ignore[union-attr]
    assert 0.4 <= time.monotonic() - began < 20
    doc = status(client, alice, action_id)
    assert (doc["status"], doc["display_status"]) == ("FAILED", INTERRUPTED)
    assert doc["details"]["code"] == "Interrupted"
    queue = provider.store.jobs()
    assert queue is not None
    assert queue.claim("elsewhere", 60, 10) == []  # never again
    release.set()


def test_a_thousand_jobs_run_exactly_once_at_most_four_at_a_time(
    build: Build, alice: FakeIdentity
) -> None:
    runs: dict[str, int] = {}
    lock = threading.Lock()
    peak = [0, 0]
    now_running = [0, 0]

    def worker(index: int) -> Callable[..., Any]:
        def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
            with lock:
                runs[action.action_id] = runs.get(action.action_id, 0) + 1
                now_running[index] += 1
                peak[index] = max(peak[index], now_running[index])
            time.sleep(0.001)
            with lock:
                now_running[index] -= 1
            return {"by": index}

        return work

    _, first = build(worker(0), max_jobs=4)
    _, second = build(worker(1), max_jobs=4)
    ids = [
        (first if k % 2 else second)
        .run(alice, {"n": k}, request_id=f"r{k}")
        .json["action_id"]
        for k in range(1000)
    ]
    for action_id in ids:
        assert ended(first, alice, action_id)["status"] == "SUCCEEDED"
    assert sorted(runs) == sorted(ids)
    assert set(runs.values()) == {1}
    assert max(peak) <= 4


def _dead_holder(provider: Provider, body: dict[str, Any], checkpoint: Any) -> str:
    """An ACTIVE action whose job a process held when it died (its lease ran out)."""
    store = provider.store
    queue = store.jobs()
    assert queue is not None
    now = time.time()
    action = Action(
        action_id=f"{now:.6f}",
        status="ACTIVE",
        creator_id="urn:globus:auth:identity:0",
        request_id=f"{now:.6f}",
        body=body,
        details={"done": 2},
        start_time=datetime.now(UTC).isoformat(),
    )
    queue.enqueue(action.action_id, None, {"identity_id": "0", "identities": []})
    key = RequestKey(action.creator_id, action.request_id, "f")
    held = store.reserve(key, action.action_id, now, 60)
    assert held.outcome == "new"
    store.create(Stored.of(action), action, None)
    # A lease of no time: run out at once, as its holder's death left it.
    [claimed] = queue.claim("dead", 0.0, 1)
    assert claimed.action_id == action.action_id
    if checkpoint is not None:
        queue.checkpoint(claimed.fence, orjson.dumps(checkpoint))
    return action.action_id


@pytest.mark.parametrize("resumable", [True, False])
def test_a_job_whose_process_died_is_taken_over(build: Build, resumable: bool) -> None:
    seen: list[Any] = []

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        seen.append((job.checkpoint, job.attempt, action.details))
        return {"done": 3}

    provider, _ = build(work, resumable=resumable)
    action_id = _dead_holder(provider, {"n": 3}, {"step": 2})
    engine = provider.jobs
    assert engine is not None
    engine.runner()  # this process's runner starts, and finds the job
    store = provider.store

    def outcome() -> Any:
        stored = store.get(action_id, time.time())
        assert stored is not None
        return stored.status != "ACTIVE" and orjson.loads(stored.public)

    doc = wait_for(outcome, "the job was taken over")
    if resumable:
        assert seen == [({"step": 2}, 2, {"done": 2})]
        assert doc["status"] == "SUCCEEDED"
    else:
        assert seen == []
        assert doc["status"] == "FAILED"
        assert "interrupted" in doc["display_status"].lower()
        assert "completion_time" in doc


def longjob(auth: FakeGlobusAuth, flavour: str) -> tuple[Provider, Client]:
    """The longjob example, imported anew against this test's fake Globus Auth,
    on the memory store, polling its queue often."""
    provider = load_provider(
        "examples.longjob.app",
        environment={
            "APTOOLS_STORE": "memory:",
            "LONGJOB_SCOPE": auth.scope,
            "LONGJOB_POLL_INTERVAL": "0.05",
            "APTOOLS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        },
    )
    app = provider.wsgi() if flavour == "wsgi" else provider.asgi()
    return provider, Client(app, provider.prefix)


def test_the_longjob_example(
    auth: FakeGlobusAuth,
    flavour: str,
    alice: FakeIdentity,
) -> None:
    provider, client = longjob(auth, flavour)
    try:
        about = client.call("GET", "/").json
        assert about["log_supported"] is True
        assert about["synchronous"] is False
        bad = client.run(alice, {"steps": 0})
        assert bad.status_code == 400
        started = client.run(
            alice, {"steps": 3, "step_seconds": 0, "scope": auth.scope}
        )
        assert started.status_code == 202
        assert started.json["details"] == {"done": 0, "steps": 3}
        done = ended(client, alice, started.json["action_id"])
        assert done["status"] == "SUCCEEDED"
        assert done["details"] == {"done": 3, "steps": 3}
        log = client.call("GET", f"/{done['action_id']}/log", alice).json
        assert [e["code"] for e in log["entries"]] == ["StepDone"] * 3
        failing = client.run(alice, {"steps": 3, "step_seconds": 0, "fail_at": 2}, "f")
        failed = ended(client, alice, failing.json["action_id"])
        assert failed["status"] == "FAILED"
        assert failed["details"]["done"] == 1
        assert "step 2" in failed["details"]["description"]
    finally:
        provider.jobs.shutdown()  # type: ignore[union-attr]


def test_the_readme_job_example(
    auth: FakeGlobusAuth, alice: FakeIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = Path(__file__).parent.parent / "docs" / "tutorial" / "background-jobs.md"
    [code] = [
        b
        for b in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
        if "# steps.py" in b
    ]
    monkeypatch.setenv("APTOOLS_STORE", "memory:")
    example: dict[str, Any] = {}
    exec(
        code.replace(
            "https://auth.globus.org/scopes/<client-id>/action_all", auth.scope
        ),
        example,
    )
    client = Client(example["app"], "/")
    try:
        started = client.run(alice, {"steps": 2})
        assert started.status_code == 202
        done = ended(client, alice, started.json["action_id"])
        assert done["details"] == {"done": 2, "steps": 2}
    finally:
        example["provider"].jobs.shutdown()


def test_a_cancel_handler_that_ends_the_action_stops_the_job(
    auth: FakeGlobusAuth, flavour: str, alice: FakeIdentity
) -> None:
    gate = Gate()
    running = threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        running.set()
        gate.step(job)
        return {"late": True}

    provider = Provider(
        title="Jobs",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema=SCHEMA,
        prefix="/c",
        store=MemoryStore(),
        job_poll_interval=0.05,
    )
    provider.job(work)
    provider.cancel(
        lambda action, caller: ActionStatus.failed(
            {"why": "asked"}, display_status="Canceled"
        )
    )
    client = Client(provider.wsgi() if flavour == "wsgi" else provider.asgi(), "/c")
    try:
        action_id = client.run(alice, {"n": 1}).json["action_id"]
        wait_for(running.is_set, "the job started")
        client.call("POST", f"/{action_id}/cancel", alice)
        wait_for(gate.saw_cancel.is_set, "the job learned of the cancel")
        assert status(client, alice, action_id)["details"] == {"why": "asked"}
    finally:
        provider.jobs.shutdown()  # type: ignore[union-attr]


def test_a_job_that_keeps_ending_its_process_ends_failed(build: Build) -> None:
    seen: list[int] = []

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        seen.append(job.attempt)
        return {}

    provider, _ = build(work, resumable=True)
    action_id = _dead_holder(provider, {"n": 1}, None)
    queue = provider.store.jobs()
    assert queue is not None
    for k in range(9):  # nine more deaths: ten claims in all
        [again] = wait_for(
            lambda k=k: queue.claim(f"dead{k}", 0.0, 1), "a claim after a death"
        )
        assert again.attempts == k + 2
    provider.jobs.runner()  # type: ignore[union-attr]

    def outcome() -> Any:
        stored = provider.store.get(action_id, time.time())
        assert stored is not None
        return stored.status != "ACTIVE" and orjson.loads(stored.public)

    doc = wait_for(outcome, "the job ended")
    assert seen == []
    assert doc["status"] == "FAILED"
    assert "interrupted" in doc["display_status"].lower()


def _absolute(n: int) -> int:
    return abs(n)


def test_a_job_using_a_process_pool_runs_once(
    build: Build, alice: FakeIdentity
) -> None:
    import multiprocessing

    runs: list[str] = []

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        runs.append(action.action_id)
        # Closing the pool sends SIGTERM to its forked workers, which
        # inherited this process's handler: they must not hand our jobs back.
        with multiprocessing.get_context("fork").Pool(2) as pool:
            total = sum(pool.map(_absolute, range(-5, 5)))
        job.wait(0.5)
        return {"total": total, "attempt": job.attempt}

    _, client = build(work, resumable=True, lease=1.0)
    ids = [
        client.run(alice, {"n": k}, request_id=f"p{k}").json["action_id"]
        for k in range(2)
    ]
    for action_id in ids:
        done = ended(client, alice, action_id)
        assert done["status"] == "SUCCEEDED"
        assert done["details"] == {"total": 25, "attempt": 1}
    assert sorted(runs) == sorted(ids)


def test_a_canceled_job_that_never_returns_frees_its_slot_and_is_logged(
    build: Build, alice: FakeIdentity, caplog: pytest.LogCaptureFixture
) -> None:
    stuck = threading.Event()
    release = threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        if action.body["n"] == 1:
            stuck.set()
            release.wait(60)  # never looks at the job
        return {"n": action.body["n"]}

    _, client = build(work, lease=0.6, max_jobs=1)
    try:
        with caplog.at_level(logging.WARNING, logger="aptools.jobs"):
            first = client.run(alice, {"n": 1}, request_id="a").json["action_id"]
            wait_for(stuck.is_set, "the first job started")
            canceled = client.call("POST", f"/{first}/cancel", alice).json
            assert canceled["status"] == "FAILED"
            # The only slot is free again although the first job never returned.
            second = client.run(alice, {"n": 2}, request_id="b").json["action_id"]
            assert ended(client, alice, second)["status"] == "SUCCEEDED"
            wait_for(
                lambda: any(first in r.getMessage() for r in caplog.records),
                "the stuck job logged",
            )
        said = [r for r in caplog.records if first in r.getMessage()]
        assert said[0].levelno == logging.WARNING
        assert re.search(r"told to stop \d+ s ago", said[0].getMessage())
        assert len(said) == 1  # at most once a minute
    finally:
        release.set()


def test_every_ended_process_counts_toward_max_attempts(
    build: Build, alice: FakeIdentity
) -> None:
    starts: list[int] = []

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        starts.append(job.attempt)
        job.wait(60)  # until handed back
        return {}

    provider, client = build(work, resumable=True, lease=3600.0, max_attempts=2)
    execution = provider.compile().execution
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    for attempt in (1, 2):

        def started(n: int = attempt) -> bool:
            return len(starts) == n

        wait_for(started, f"attempt {attempt}")
        provider.jobs.shutdown()  # type: ignore[union-attr]  # as at SIGTERM
        execution.start()
    done = ended(client, alice, action_id)
    assert starts == [1, 2]
    assert (done["status"], done["details"]["code"]) == ("FAILED", "Interrupted")
    assert "max_attempts" in done["details"]["description"]
