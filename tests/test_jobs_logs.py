"""What the job runner's log says is what happened (WSGI and ASGI).

A job whose own end races its heartbeat was not taken over; a job that lost
its lease to another process was; a store outage shorter than the lease is
ridden out: the job goes on and succeeds, and nothing says it failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pytest

from aptools import Action, Caller, Job, MemoryStore, SQLiteStore
from aptools.jobs import Beat, Claimed, JobQueue
from aptools.testing import FakeIdentity, wait_for

from .pg import Relay, pg_url_fixture, schema_fixture, through  # noqa: F401
from .test_jobs import (  # noqa: F401 - the fixtures build, new_store, store_kind
    Build,
    build,
    ended,
    new_store,
    store_kind,
)

RUNNER = "aptools.jobs"


class _Race:
    """Shared by a store's queues: a heartbeat naming a job waits until the
    job's own end has taken its row, then goes on."""

    def __init__(self) -> None:
        self.beat = threading.Event()  # a heartbeat holds the running job
        self.finished = threading.Event()  # the job's end took its row
        self.missed: list[str] = []


class _RacingQueue(JobQueue):
    """Any queue, with :class:`_Race` between its heartbeat and finish."""

    def __init__(self, inner: JobQueue, race: _Race) -> None:
        self.inner, self.race = inner, race

    def heartbeat(
        self, owner: str, action_ids: Collection[str], now: float, lease: float
    ) -> list[Beat]:
        race = self.race
        if not action_ids or race.finished.is_set():
            return self.inner.heartbeat(owner, action_ids, now, lease)
        race.beat.set()
        assert race.finished.wait(30), "the job never ended"
        beats = self.inner.heartbeat(owner, action_ids, now, lease)
        answered = {b.action_id for b in beats}
        race.missed = [a for a in action_ids if a not in answered]
        return beats

    def finish(self, action_id: str) -> None:
        self.inner.finish(action_id)
        self.race.finished.set()

    def enqueue(
        self,
        action_id: str,
        now: float,
        deadline: float | None,
        caller: Mapping[str, Any],
        tokens: bytes | None = None,
    ) -> None:
        self.inner.enqueue(action_id, now, deadline, caller, tokens)

    def claim(self, owner: str, now: float, lease: float, limit: int) -> list[Claimed]:
        return self.inner.claim(owner, now, lease, limit)

    def release(self, owner: str, action_ids: Collection[str]) -> None:
        self.inner.release(owner, action_ids)

    def resume(
        self, action_id: str, caller: Mapping[str, Any], tokens: bytes | None
    ) -> bool:
        return self.inner.resume(action_id, caller, tokens)

    def request_cancel(self, action_id: str) -> None:
        self.inner.request_cancel(action_id)

    def checkpoint(self, owner: str, action_id: str, state: bytes) -> bool:
        return self.inner.checkpoint(owner, action_id, state)

    def save_tokens(self, owner: str, action_id: str, tokens: bytes) -> bool:
        return self.inner.save_tokens(owner, action_id, tokens)

    def due(self, now: float) -> list[str]:
        return self.inner.due(now)

    def sweep(self, now: float, grace: float) -> int:
        return self.inner.sweep(now, grace)


class _RacingMemory(MemoryStore):
    race: _Race

    def jobs(self) -> Any:
        return _RacingQueue(super().jobs(), self.race)


class _RacingSQLite(SQLiteStore):
    race: _Race

    def jobs(self) -> Any:
        return _RacingQueue(super().jobs(), self.race)


@pytest.fixture(params=["memory", "sqlite"])
def racing(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    store: _RacingMemory | _RacingSQLite = (
        _RacingMemory()
        if request.param == "memory"
        else _RacingSQLite(tmp_path / "a.db")
    )
    store.race = _Race()  # kept by every view of the store
    return store


def _said(caplog: pytest.LogCaptureFixture, action_id: str) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if r.name == RUNNER and action_id in r.getMessage()
    ]


def test_a_job_whose_own_end_races_its_heartbeat_is_not_taken_over(
    build: Build,  # noqa: F811 - the fixture imported above
    racing: Any,
    alice: FakeIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=RUNNER)
    race: _Race = racing.race

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        assert race.beat.wait(30), "no heartbeat came"
        return {"done": True}

    _, client = build(work, store=racing, lease=0.3)
    action_id = client.run(alice, {"n": 1}).json["action_id"]
    assert ended(client, alice, action_id)["status"] == "SUCCEEDED"
    wait_for(lambda: race.missed, "the heartbeat missed the ended job")
    assert race.missed == [action_id]  # the race took place
    said = wait_for(lambda: _said(caplog, action_id), "the runner said something")
    assert said == [(logging.DEBUG, f"job {action_id} ended as its lease was renewed")]


def test_a_job_that_lost_its_lease_to_another_process_says_so(
    build: Build,  # noqa: F811 - the fixture imported above
    alice: FakeIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=RUNNER)
    started, stop = threading.Event(), threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        started.set()
        while not job.canceled and not stop.is_set():
            job.wait(0.02)
        return {"done": True}

    provider, client = build(work, lease=0.6)
    queue = provider.store.jobs()
    assert queue is not None
    try:
        action_id = client.run(alice, {"n": 1}).json["action_id"]
        assert started.wait(30)
        # Another process claims the job as if this one had stopped renewing.
        later = time.time() + 60
        taken = queue.claim("elsewhere", later, 600, 1)
        assert [c.action_id for c in taken] == [action_id]
        said = wait_for(lambda: _said(caplog, action_id), "the runner noticed")
    finally:
        stop.set()
    assert said[0][0] == logging.WARNING
    assert "no longer held here" in said[0][1]
    assert "another process took it over" in said[0][1]


def test_a_store_outage_shorter_than_the_lease_is_ridden_out(
    auth: Any,
    flavour: str,
    schema: str,
    alice: FakeIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL cut away under a running job, for less than its lease: the
    job's reports wait for the store and go on once it is back; the job is
    started once and SUCCEEDS, and nothing is said at ERROR nor of a job
    that failed or stopped; the runner says the store was away, and back."""
    from aptools import Provider
    from aptools.store.postgresql import PostgreSQLStore

    from .conftest import Client

    caplog.set_level(logging.DEBUG, logger=RUNNER)
    relay = Relay()
    store = PostgreSQLStore(
        through(relay, schema, connect_timeout=1, pool_timeout=1, statement_timeout=2)
    )
    provider = Provider(
        title="Jobs",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema={"type": "object"},
        prefix="/jobs",
        store=store,
        job_poll_interval=0.05,
    )
    reported, mended = threading.Event(), threading.Event()
    attempts: list[int] = []
    took: list[float] = []  # how long each report took (seconds)

    @provider.job(resumable=True, lease=20.0)
    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        attempts.append(job.attempt)
        step = 0
        while not mended.is_set():
            step += 1
            began = time.monotonic()
            job.progress({"step": step})  # waits for the store while it is away
            took.append(time.monotonic() - began)
            reported.set()
            time.sleep(0.02)
        job.progress({"step": "last"})
        return {"done": step}

    client = Client(
        provider.wsgi() if flavour == "wsgi" else provider.asgi(), provider.prefix
    )

    def runner_said(text: str) -> bool:
        return any(r.name == RUNNER and text in r.getMessage() for r in caplog.records)

    try:
        action_id = client.run(alice, {}).json["action_id"]
        assert reported.wait(30)
        relay.cut()
        wait_for(
            lambda: runner_said("the store is unavailable"),
            "the runner met the outage",
            timeout=30,
        )
        relay.mend()
        mended.set()
        doc = wait_for(
            lambda: (
                (r := client.call("GET", f"/actions/{action_id}", alice)).status_code
                == 200
                and r.json["status"] != "ACTIVE"
                and r.json
            ),
            "the job ended",
            timeout=60,
        )
    finally:
        mended.set()
        provider.compile().execution.stop()
        provider.store.close()
        store.close()
        relay.cut()
    assert doc["status"] == "SUCCEEDED", doc
    assert attempts == [1]  # ridden out: never taken over
    # A report met the outage and waited for the store instead of raising.
    assert max(took) > 0.1, took
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == RUNNER]
    assert not [m for level, m in said if level >= logging.ERROR], said
    mine = _said(caplog, action_id)
    assert not [m for _, m in mine if "failed" in m or "stopped" in m], mine
    assert runner_said("works again")
