"""End to end, as operators run it: gunicorn (2 workers) accepts keep_tokens
jobs, is killed (-9) before they first act for their callers, and
``aptools worker`` on another "host" of the same PostgreSQL database takes
them over, after the callers' tokens expired, with refresh tokens rotated at
every step, one consent revoked (INACTIVE, consent, resume) and the key
rotated between the two hosts. No token in clear in the rows, the servers'
output or the answers; none left once the actions ended."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from globus_sdk.gare import to_gare

from aptools.testing import FakeGlobusAuth, FakeIdentity

from .cli_support import Launched
from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    execute,
    pg_url_fixture,
    schema_fixture,
)
from .servers import ROOT, Server
from .test_jobs_e2e import family, kill_all, wait_for

pytestmark = pytest.mark.e2e
pytest.importorskip("psycopg")

TRANSFER = "urn:globus:auth:scope:transfer.api.globus.org:all"
MODULE = """
import os

from aptools import Action, Caller, Job, Provider

TRANSFER = "urn:globus:auth:scope:transfer.api.globus.org:all"
provider = Provider(
    title="Kept",
    scope=os.environ["KEPT_SCOPE"],
    admin_contact="a@example.org",
    prefix="/kept",
    input_schema={"type": "object"},
    dependent_scopes=[TRANSFER],
    job_poll_interval=0.2,
)


@provider.job(keep_tokens=True, resumable=True, lease=3.0)
def work(action: Action, caller: Caller, job: Job) -> dict:
    steps, done = int(action.body["steps"]), int(job.checkpoint or 0)
    job.progress({"done": done, "pid": os.getpid()})
    if done == 0 and job.wait(float(action.body["first_wait"])):
        job.raise_if_canceled()
    while done < steps:
        caller.authorizer(TRANSFER)  # refreshed: its token is stale by now
        done += 1
        job.save_checkpoint(done)
        job.progress({"done": done, "pid": os.getpid()})
        if done < steps and job.wait(float(action.body["step_seconds"])):
            job.raise_if_canceled()
    return {"done": done, "pid": os.getpid()}


app = provider.wsgi()
asgi = provider.asgi()
"""


def test_kept_tokens_across_hosts_expiry_kill_rotation_and_revocation(
    auth: FakeGlobusAuth,
    alice: FakeIdentity,
    bob: FakeIdentity,
    pg_url: str,
    schema: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "keptjob.py").write_text(MODULE)
    # Dependent tokens stale for aptools 1 s after each grant; every refresh
    # answers a new refresh token (the fake serves the session: reset after).
    monkeypatch.setattr(auth, "dependent_token_lifetime", 61)
    monkeypatch.setattr(auth, "rotate_refresh_tokens", True)
    old, new = Fernet.generate_key(), Fernet.generate_key()
    rotated = f"{new.decode()},{old.decode()}"

    def host(kind: str, key: str) -> Server:
        server = Server(kind, "keptjob", "/kept", auth, pg_url)
        server.env["PYTHONPATH"] = f"{ROOT}:{tmp_path}"
        server.env["KEPT_SCOPE"] = auth.scope
        server.env["APTOOLS_ENCRYPTION_KEY"] = key
        return server

    def doc(server: Server, who: FakeIdentity, action_id: str) -> dict[str, Any]:
        found: dict[str, Any] = server.call(
            "GET", f"/actions/{action_id}", who.token
        ).json()
        return found

    accepting = host("gunicorn", old.decode()).start()
    grants = auth.grants[TRANSFER]
    born = time.time()
    ids: dict[str, str] = {}
    for who, steps in ((alice, 3), (bob, 8)):
        short = auth.token(who, expires_in=3)  # expires before the first use
        ran = accepting.call(
            "POST",
            "/actions",
            short,
            json={
                "request_id": "e2e",
                "body": {"steps": steps, "first_wait": 4, "step_seconds": 1.2},
            },
        )
        assert ran.status_code == 202, ran.text
        ids[who.username] = ran.json()["action_id"]
    # The declared scope was granted in each run's request.
    assert auth.grants[TRANSFER] == grants + 2
    for who in (alice, bob):
        wait_for(
            lambda w=who: "pid" in doc(accepting, w, ids[w.username])["details"],
            "the accepting host runs the job",
        )
    killed = family(accepting.proc.pid)  # type: ignore[union-attr]
    said = accepting.said()
    kill_all(accepting)  # kill -9: no hand-back, leases run out
    rows = execute(f'SELECT tokens FROM "{schema}".aptools_jobs')
    assert len(rows) == 2 and all(t is not None for (t,) in rows)
    for (sealed,) in rows:
        assert b"fake-" not in bytes(sealed)
        Fernet(old).decrypt(bytes(sealed))

    env = {**auth.env(), "APTOOLS_STORE": pg_url, "KEPT_SCOPE": auth.scope}
    env.update(PATH="/usr/bin:/bin", PYTHONPATH=str(ROOT))
    env["APTOOLS_ENCRYPTION_KEY"] = rotated  # the operator rotates the key
    worker = Launched("worker", "keptjob", cwd=tmp_path, env=env)
    serving = host("uvicorn", rotated)
    try:
        worker.wait_for(lambda out: "running the jobs" in out)
        serving.start()
        wait_for(lambda: time.time() > born + 3.5, "the callers' tokens expired")
        taken = wait_for(
            lambda: (
                (d := doc(serving, alice, ids[alice.username]))["details"].get(
                    "done", 0
                )
                >= 1
                and d
            ),
            "another host acts for alice after her token expired",
        )
        assert taken["details"]["pid"] not in killed
        wait_for(
            lambda: doc(serving, bob, ids[bob.username])["details"].get("done", 0) >= 1,
            "another host acts for bob",
        )
        auth.revoke_consent(bob, TRANSFER)  # bob takes his consent back
        done = wait_for(
            lambda: (
                (d := doc(serving, alice, ids[alice.username]))["status"] != "ACTIVE"
                and d
            ),
            "alice's job ended",
        )
        assert done["status"] == "SUCCEEDED", done
        waiting = wait_for(
            lambda: (
                (d := doc(serving, bob, ids[bob.username]))["status"] != "ACTIVE" and d
            ),
            "bob's job stopped",
        )
        assert waiting["status"] == "INACTIVE", waiting
        assert to_gare(waiting["details"]) is not None
        # At rest: sealed, with the newest key (the take-over's writes of
        # rotated refresh tokens re-sealed it).
        [(sealed,)] = execute(
            f'SELECT tokens FROM "{schema}".aptools_jobs WHERE tokens IS NOT NULL'
        )
        assert b"fake-" not in bytes(sealed)
        Fernet(new).decrypt(bytes(sealed))
        auth.grant_consent(bob, TRANSFER)
        resumed = serving.call(
            "POST", f"/actions/{ids[bob.username]}/resume", bob.token
        )
        assert resumed.json()["status"] == "ACTIVE", resumed.text
        finished = wait_for(
            lambda: (
                (d := doc(serving, bob, ids[bob.username]))["status"] != "ACTIVE" and d
            ),
            "bob's job ended",
        )
        assert finished["status"] == "SUCCEEDED", finished
        assert finished["details"]["done"] == 8
        answers = str([done, waiting, finished, resumed.text])
        said += serving.said() + worker.said()
    finally:
        serving.stop()
        worker.stop()
    # Every kept token went with its action's end.
    assert execute(
        f'SELECT count(*) FROM "{schema}".aptools_jobs WHERE tokens IS NOT NULL'
    ) == [(0,)]
    for text in (said, answers):
        assert "fake-refresh-" not in text
        assert "fake-" not in text
