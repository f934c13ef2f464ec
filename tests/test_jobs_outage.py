"""A store outage during a job, on PostgreSQL (the store a network can cut),
both faces: one shorter than the lease is ridden out (the job's writes wait
for the store and the job goes on, started once); a longer one hands the job
over from its checkpoint. A store's fault never ends the action FAILED."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from aptools import Action, Caller, Job, Provider
from aptools.store.postgresql import PostgreSQLStore
from aptools.testing import FakeGlobusAuth, FakeIdentity
from aptools.testing.waiting import wait_for
from tests.conftest import Client

from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    Relay,
    pg_url_fixture,
    require_server,
    schema_fixture,
    through,
)

STEPS = 30


@pytest.fixture
def relay() -> Iterator[Relay]:
    require_server()
    made = Relay()
    yield made
    made.cut()


def build(
    auth: FakeGlobusAuth, flavour: str, url: str, lease: float
) -> tuple[Provider, Client, dict[str, Any]]:
    seen: dict[str, Any] = {"starts": [], "step": threading.Event()}
    provider = Provider(
        title="Outage",
        scope=auth.scope,
        admin_contact="admin@example.org",
        input_schema={"type": "object"},
        prefix="/outage",
        store=PostgreSQLStore(url),
        job_poll_interval=0.1,
    )

    @provider.job(resumable=True, lease=lease)
    def work(action: Action, caller: Caller, job: Job) -> dict[str, Any]:
        seen["starts"].append(job.attempt)
        step = job.checkpoint or 0
        while step < STEPS:
            job.wait(0.1)
            step += 1
            job.save_checkpoint(step)
            job.progress({"step": step})
            if step == 3:
                seen["step"].set()
        return {"steps": step}

    app = provider.wsgi() if flavour == "wsgi" else provider.asgi()
    return provider, Client(app, provider.prefix), seen


def outcome(client: Client, alice: FakeIdentity, action_id: str) -> dict[str, Any]:
    def ended() -> Any:
        got = client.call("GET", f"/{action_id}/status", alice)
        return got.status_code == 200 and got.json["status"] != "ACTIVE" and got.json

    done: dict[str, Any] = wait_for(ended, "the action ended", timeout=90)
    return done


@pytest.mark.parametrize(("lease", "outage"), [(10.0, 3.0), (2.0, 5.0)])
def test_a_store_outage_never_fails_a_job(
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    flavour: str,
    relay: Relay,
    schema: str,
    lease: float,
    outage: float,
) -> None:
    url = through(relay, schema, pool_timeout=1, connect_timeout=1, statement_timeout=2)
    provider, client, seen = build(auth, flavour, url, lease)
    try:
        action_id = client.run(alice, {}).json["action_id"]
        assert seen["step"].wait(30)
        relay.cut()
        cut = threading.Event()
        cut.wait(outage)  # the outage lasts this long
        relay.mend()
        done = outcome(client, alice, action_id)
    finally:
        provider.compile().execution.stop()
        provider.store.close()
    assert done["status"] == "SUCCEEDED", done
    assert done["details"] == {"steps": STEPS}
    if outage < lease:
        assert seen["starts"] == [1]  # ridden out: started once
    else:
        # Taken over (here, by this same process) from its checkpoint.
        assert seen["starts"][0] == 1 and len(seen["starts"]) >= 2
