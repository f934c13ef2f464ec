"""The execution seam's threads: one place starts and stops the housekeeping
and the job runner; a closed store stops them; an unavailable one is said
once, not at every attempt."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from aptools import Action, Caller, Job, Provider
from aptools.execution import Execution
from aptools.store.postgresql import PostgreSQLStore
from aptools.testing import FakeGlobusAuth, FakeIdentity
from aptools.testing.waiting import wait_for
from tests.conftest import Client

from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    Relay,
    pg_url_fixture,
    schema_fixture,
    through,
)


class Counted(PostgreSQLStore):
    """A PostgreSQL store that counts the purges asked of it."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.purges = 0

    def purge(self, now: float) -> int:
        self.purges += 1
        return super().purge(now)


@pytest.fixture
def relay() -> Iterator[Relay]:
    made = Relay()
    yield made
    made.cut()


def test_a_closed_store_stops_the_housekeeping(pg_url: str) -> None:
    store = Counted(pg_url)
    execution = Execution(store, purge_interval=0.01)
    execution.start()
    wait_for(lambda: store.purges >= 2, "purged")
    store.close()
    assert store.closed
    wait_for(lambda: not execution.running, "the housekeeping stopped")
    purged = store.purges
    execution.stop()
    assert store.purges == purged


def test_an_unavailable_store_is_logged_once_without_traceback(
    relay: Relay, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = Counted(through(relay, schema, pool_timeout=0.2, connect_timeout=1))
    execution = Execution(store, purge_interval=0.01)
    caplog.set_level(logging.INFO, logger="aptools")
    relay.cut()
    execution.start()
    try:
        wait_for(lambda: store.purges >= 5, "five purges tried")
        said = [r for r in caplog.records if r.name == "aptools"]
        assert len(said) == 1, [r.getMessage() for r in said]
        assert "unavailable" in said[0].getMessage()
        assert said[0].exc_info is None
        relay.mend()
        wait_for(
            lambda: any("works again" in r.getMessage() for r in caplog.records),
            "the recovery said",
        )
    finally:
        execution.stop()
        store.close()


def test_execution_owns_the_job_runner(
    auth: FakeGlobusAuth, flavour: str, pg_url: str, alice: FakeIdentity
) -> None:
    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        return {"ok": True}

    store = PostgreSQLStore(pg_url)
    provider = Provider(
        title="Jobs",
        scope=auth.scope,
        admin_contact="admin@example.org",
        prefix="/jobs",
        input_schema={"type": "object"},
        store=store,
        job_poll_interval=0.05,
    )
    provider.job(lease=5.0)(work)
    app = provider.wsgi() if flavour == "wsgi" else provider.asgi()
    client = Client(app, provider.prefix)
    execution = provider.compile().execution
    engine = provider.jobs
    assert engine is not None and execution.jobs is engine
    try:
        assert engine.started_runner is None and not execution.running
        assert client.call("GET", "/", alice).status_code == 200
        # The first request started this process's threads: both of them.
        runner = engine.started_runner
        assert runner is not None and execution.running
        # Stopping the seam hands the jobs back and stops the runner.
        execution.stop()
        assert not execution.running
        assert engine.started_runner is None
        wait_for(lambda: not runner._thread.is_alive(), "the runner stopped")
        # Started again, then the store closed: the runner ends by itself (the
        # housekeeping at its next round, see the first test).
        execution.start()
        again = engine.started_runner
        assert again is not None and again is not runner and execution.running
        provider.store.close()
        store.close()
        wait_for(lambda: not again._thread.is_alive(), "the runner ended")
    finally:
        execution.stop()
        store.close()
