"""What the job runner's log says is what happened (WSGI and ASGI).

A job whose own end (its outcome stored, or its row deleted) races its
heartbeat was not taken over; a job whose process froze past its lease
was; a store outage shorter than the lease is ridden out: the job goes on
and succeeds, and nothing says it failed.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

from aptools import Action, Caller, Job, MemoryStore, SQLiteStore
from aptools.jobs import Beat, JobQueue
from aptools.store import Store, Stored
from aptools.store.jobqueue import Fence
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
    """Shared by a store's queues (every view of the store keeps it).

    ``end``: a heartbeat naming a job waits until the job's own end
    (:meth:`JobQueue.conclude` or :meth:`JobQueue.delete`) has taken its row,
    then goes on. ``freeze``: a heartbeat naming a job blocks, renewing
    nothing, as a frozen process would, until ``thawed`` is set (after
    another owner claimed the job once its lease ran out).
    """

    def __init__(self, mode: str = "end") -> None:
        self.mode = mode
        self.beat = threading.Event()  # a heartbeat holds the running job
        self.finished = threading.Event()  # the job's end took its row
        self.thawed = threading.Event()  # the frozen heartbeat may go on
        self.missed: list[str] = []


def _forward(name: str) -> Callable[..., Any]:
    def method(self: _Forwarding, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, name)(*args, **kwargs)

    method.__name__ = name
    return method


class _Forwarding(JobQueue):
    """Any queue: every method of the contract goes to ``inner`` as it is,
    so that methods the contract gains later need nothing here."""

    def __init__(self, inner: JobQueue) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


for _name, _member in vars(JobQueue).items():
    if callable(_member) and not _name.startswith("_"):
        setattr(_Forwarding, _name, _forward(_name))
abc.update_abstractmethods(_Forwarding)


class _RacingQueue(_Forwarding):
    """Any queue, with :class:`_Race` between its heartbeat and the job's end."""

    def __init__(self, inner: JobQueue, race: _Race) -> None:
        super().__init__(inner)
        self.race = race

    def heartbeat(self, fences: Collection[Fence], lease: float) -> list[Beat]:
        race = self.race
        if not fences or race.finished.is_set() or race.thawed.is_set():
            return self.inner.heartbeat(fences, lease)
        race.beat.set()
        if race.mode == "end":
            assert race.finished.wait(30), "the job never ended"
        else:
            assert race.thawed.wait(60), "nobody took the job over"
        beats = self.inner.heartbeat(fences, lease)
        answered = {b.action_id for b in beats}
        race.missed = [f.action_id for f in fences if f.action_id not in answered]
        return beats

    def conclude(
        self, fence: Fence, stored: Stored, expires_at: float | None, keep: bool
    ) -> None:
        try:
            self.inner.conclude(fence, stored, expires_at, keep)
        finally:
            self.race.finished.set()

    def conclude_and_claim(
        self,
        fence: Fence,
        stored: Stored,
        expires_at: float | None,
        keep: bool,
        *claim: Any,
        **named: Any,
    ) -> Any:
        try:
            return self.inner.conclude_and_claim(
                fence, stored, expires_at, keep, *claim, **named
            )
        finally:
            self.race.finished.set()

    def delete(self, fence: Fence) -> bool:
        try:
            return self.inner.delete(fence)
        finally:
            self.race.finished.set()


class _RacingMemory(MemoryStore):
    race: _Race

    def jobs(self) -> Any:
        return _RacingQueue(super().jobs(), self.race)


class _RacingSQLite(SQLiteStore):
    race: _Race

    def jobs(self) -> Any:
        return _RacingQueue(super().jobs(), self.race)


def _racing_postgresql(url: str) -> Store:
    from aptools.store.postgresql import PostgreSQLStore

    class _RacingPostgreSQL(PostgreSQLStore):
        race: _Race

        def for_provider(self, namespace: str) -> PostgreSQLStore:
            view = super().for_provider(namespace)
            view.__class__ = type(self)
            view.race = self.race  # type: ignore[attr-defined]
            return view

        def jobs(self) -> Any:
            return _RacingQueue(super().jobs(), self.race)

    return _RacingPostgreSQL(url)


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def racing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    store: Any
    if request.param == "postgresql":
        store = _racing_postgresql(request.getfixturevalue("pg_url"))
    elif request.param == "sqlite":
        store = _RacingSQLite(tmp_path / "a.db")
    else:
        store = _RacingMemory()
    store.race = _Race()  # kept by every view of the store
    yield store
    store.close()


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
    racing: Any,
    alice: FakeIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A process frozen past its lease (its heartbeat blocked, renewing
    nothing): another owner claims the job once the lease ran out, by the
    queue's own clock; the frozen process, thawed, learns at its next renewal
    that the job is no longer its own, says so, and stores nothing."""
    caplog.set_level(logging.DEBUG, logger=RUNNER)
    race: _Race = racing.race
    race.mode = "freeze"
    started, stop = threading.Event(), threading.Event()

    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        started.set()
        while not job.canceled and not stop.is_set():
            job.wait(0.02)
        return {"done": True}

    provider, client = build(work, store=racing, lease=0.6)
    queue = provider.store.jobs()
    try:
        action_id = client.run(alice, {"n": 1}).json["action_id"]
        assert started.wait(30)
        assert race.beat.wait(30), "no heartbeat came"
        # Another process, polling as a runner does, takes the job over once
        # the frozen holder's lease ran out.
        taken = wait_for(
            lambda: queue.claim("elsewhere", 600, 1),
            "the lease ran out and another owner claimed the job",
            timeout=30,
        )
        assert [c.action_id for c in taken] == [action_id]
        assert taken[0].attempts == 2
        race.thawed.set()
        said = wait_for(lambda: _said(caplog, action_id), "the runner noticed")
        wait_for(lambda: race.missed, "the thawed heartbeat missed the job")
        assert race.missed == [action_id]
    finally:
        race.thawed.set()
        stop.set()
    # Whichever noticed first (the runner's renewal, or the job's own check
    # and then its refused end), the first word is a warning of a take-over.
    assert said[0][0] == logging.WARNING, said
    assert "took it over" in said[0][1] or "was taken over" in said[0][1], said
    assert not [m for _, m in said if "ended as its lease was renewed" in m], said
    assert not [m for level, m in said if level >= logging.ERROR], said
    # The job was not ended by the process that lost it.
    doc = client.call("GET", f"/{action_id}/status", alice).json
    assert doc["status"] == "ACTIVE", doc


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
