"""End to end on PostgreSQL: the longjob example on two hosts (gunicorn with 2
workers, and uvicorn) sharing one database; kill -9 of the host running a
job, and the other host takes it over from its checkpoint and finishes."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    execute,
    pg_url_fixture,
    schema_fixture,
)
from .servers import Server
from .test_jobs_e2e import FAST_TAKE_OVER, family, kill_all, wait_for

pytestmark = pytest.mark.e2e
pytest.importorskip("psycopg")

KEY = Fernet.generate_key().decode()


def host(kind: str, auth: FakeGlobusAuth, url: str) -> Server:
    server = Server(kind, "examples.longjob.app", "/longjob", auth, url)
    server.env["LONGJOB_SCOPE"] = auth.scope
    server.env["APTOOLS_ENCRYPTION_KEY"] = KEY
    server.env.update(FAST_TAKE_OVER)
    return server


@pytest.mark.parametrize("runs_on", ["gunicorn", "uvicorn"])
def test_the_other_host_takes_over_a_killed_hosts_job(
    runs_on: str,
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    pg_url: str,
    schema: str,
) -> None:
    steps = 40
    seen: list[int] = []
    other_kind = "uvicorn" if runs_on == "gunicorn" else "gunicorn"
    one = host(runs_on, auth, pg_url)
    two = host(other_kind, auth, pg_url)

    def done(server: Server, action_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = server.call(
            "GET", f"/{action_id}/status", alice.token
        ).json()
        seen.append(doc["details"]["done"])
        return doc

    # However the test ends, neither server outlives it.
    try:
        # Both hosts are up before the job starts, so on a loaded machine the job
        # cannot end while the second host is still starting. Either may claim it
        # (the run's own host, or the other on the database's notice); the test
        # kills whichever holds it and the survivor must finish it.
        one.start()
        two.start()
        for server in (one, two):  # a gunicorn worker's runner starts on a request
            assert server.call("GET", "/", alice.token).status_code == 200
        started = one.call(
            "POST",
            "/run",
            alice.token,
            # Every step acts as the caller: on the other host only the kept
            # (encrypted) refresh token can.
            json={
                "request_id": "k9",
                "body": {"steps": steps, "step_seconds": 0.2, "scope": auth.scope},
            },
        )
        assert started.status_code == 202, started.text
        action_id = started.json()["action_id"]
        wait_for(lambda: done(one, action_id)["details"]["done"] >= 3, "3 steps")
        [(owner,)] = execute(f'SELECT owner FROM "{schema}".aptools_jobs')
        assert owner is not None
        holder, survivor = (
            (one, two) if proc_id(owner) in family(pid_of(one)) else (two, one)
        )
        assert proc_id(owner) in family(pid_of(holder))
        assert done(survivor, action_id)["status"] == "ACTIVE"
        kill_all(holder)
        end = wait_for(
            lambda: (d := done(survivor, action_id))["status"] != "ACTIVE" and d,
            "the other host finished the job",
        )
        log = survivor.call(
            "GET", f"/{action_id}/log", alice.token, params={"limit": 1000}
        ).json()
        said = survivor.said()
    finally:
        one.stop()
        two.stop()
    assert "fake-refresh-" not in said
    assert end["status"] == "SUCCEEDED", end
    assert end["details"] == {"done": steps, "steps": steps}
    assert seen == sorted(seen), "done went backwards"
    described = [e["description"] for e in log["entries"]]
    # Taken over from the checkpoint: no step was done twice.
    assert len(described) == len(set(described)) >= steps - 1
    # The job row went with the job.
    assert execute(f'SELECT count(*) FROM "{schema}".aptools_jobs') == [(0,)]


def proc_id(owner: str) -> int:
    """The process id in a runner's owner name (``host:pid:nonce``)."""
    return int(owner.split(":")[1])


def pid_of(server: Server) -> int:
    assert server.proc is not None
    return server.proc.pid
