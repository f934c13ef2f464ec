"""End to end, under real gunicorn (2 workers) and uvicorn with ``aptools
worker`` beside them:

- a process frozen past its lease (SIGSTOP: a paused VM, a container freeze)
  while it runs a job, on SQLite and PostgreSQL. Another process takes the job
  over; the frozen one, continued, does no further step and stores nothing,
  and the action ends SUCCEEDED once;
- on PostgreSQL, a worker on a host whose clock is a minute fast takes over
  no job that a live process holds: leases are on the database's clock."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aptools.testing import FakeGlobusAuth, FakeIdentity, waiting

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures
from .servers import ROOT, Server

pytestmark = pytest.mark.e2e

STEPS = 40
MODULE = """
import os

from aptools import Action, Caller, Job, Provider

provider = Provider(
    title="Frozen",
    scope=os.environ["FROZEN_SCOPE"],
    admin_contact="admin@example.org",
    prefix="/frozen",
    synchronous=False,
    input_schema={"type": "object"},
    job_poll_interval=0.2,
)


@provider.job(resumable=True, lease=2.0)
def work(action: Action, caller: Caller, job: Job) -> dict:
    done = job.checkpoint or 0
    while done < STEPS:
        if job.wait(0.3):
            job.raise_if_canceled()
        with open(os.environ["FROZEN_JOURNAL"], "a") as out:  # the side effect
            out.write(f"{os.getpid()} {done} {time.time()}\\n")
        done += 1
        job.save_checkpoint(done)
        job.progress({"done": done})
    return {"done": done}


app = provider.wsgi()
asgi = provider.asgi()
""".replace("STEPS", str(STEPS)).replace("import os\n", "import os\nimport time\n", 1)


@pytest.fixture(params=["gunicorn", "uvicorn"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'actions.db'}"


def _journal(path: Path) -> list[tuple[int, int, float]]:
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(int(pid), int(step), float(at)) for pid, step, at in lines]


@pytest.fixture
def running(
    kind: str, store_url: str, auth: FakeGlobusAuth, tmp_path: Path
) -> Iterator[tuple[Server, Path]]:
    (tmp_path / "frozen_app.py").write_text(MODULE)
    journal = tmp_path / "journal"
    server = Server(kind, "frozen_app", "/frozen", auth, store_url)
    server.env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    server.env["FROZEN_SCOPE"] = auth.scope
    server.env["FROZEN_JOURNAL"] = str(journal)
    with server:
        worker = subprocess.Popen(
            [sys.executable, "-m", "aptools.cli", "worker", "frozen_app"],
            cwd=ROOT,
            env=server.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield server, journal
        finally:
            for pid in {p for p, _, _ in _journal(journal)}:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)  # never leave one frozen
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def test_a_process_frozen_past_its_lease_does_no_further_step(
    running: tuple[Server, Path], alice: FakeIdentity
) -> None:
    server, journal = running
    ran = server.call("POST", "/run", alice.token, json={"request_id": "f", "body": {}})
    assert ran.status_code == 202, ran.text
    action_id = ran.json()["action_id"]
    waiting.wait_for(lambda: len(_journal(journal)) >= 2, "the job started", 60)
    frozen = _journal(journal)[-1][0]
    os.kill(frozen, signal.SIGSTOP)
    try:
        # No HTTP meanwhile: the frozen process may be the one serving it.
        waiting.wait_for(
            lambda: any(p != frozen for p, _, _ in _journal(journal)),
            "another process took the job over",
            60,
            every=0.1,
        )
    finally:
        continued = time.time()
        os.kill(frozen, signal.SIGCONT)

    def ended() -> dict[str, object] | None:
        doc = server.call("GET", f"/{action_id}/status", alice.token).json()
        return doc if doc["status"] != "ACTIVE" else None

    doc = waiting.wait_for(ended, "the job ended", 120, every=0.2)
    assert doc["status"] == "SUCCEEDED", doc
    assert doc["details"] == {"done": STEPS}
    late = [
        (step, at - continued)
        for pid, step, at in _journal(journal)
        if pid == frozen and at > continued
    ]
    assert late == [], "the frozen process did steps after it was continued"


# A worker on a host whose clock runs a minute fast (the process's clock is
# moved, as the host's would be; the database's is not).
SKEWED = """
import sys, time
import time_machine
with time_machine.travel(time.time() + 60, tick=True):
    from aptools.cli import main
    sys.argv = ["aptools", "worker", "frozen_app"]
    main()
"""


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_a_host_whose_clock_is_fast_takes_over_no_live_job(
    kind: str, pg_url: str, auth: FakeGlobusAuth, alice: FakeIdentity, tmp_path: Path
) -> None:
    (tmp_path / "frozen_app.py").write_text(MODULE)
    journal = tmp_path / "journal"
    server = Server(kind, "frozen_app", "/frozen", auth, pg_url)
    server.env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(ROOT)])
    server.env["FROZEN_SCOPE"] = auth.scope
    server.env["FROZEN_JOURNAL"] = str(journal)
    with server:
        ran = server.call(
            "POST", "/run", alice.token, json={"request_id": "s", "body": {}}
        )
        assert ran.status_code == 202, ran.text
        action_id = ran.json()["action_id"]
        waiting.wait_for(lambda: len(_journal(journal)) >= 1, "the job started", 60)
        holder = _journal(journal)[0][0]
        fast = subprocess.Popen(
            [sys.executable, "-c", SKEWED],
            cwd=ROOT,
            env=server.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            doc = waiting.wait_for(
                lambda: (
                    (
                        d := server.call(
                            "GET", f"/{action_id}/status", alice.token
                        ).json()
                    )["status"]
                    != "ACTIVE"
                    and d
                ),
                "the job ended",
                120,
                every=0.2,
            )
        finally:
            fast.send_signal(signal.SIGTERM)
            _, said = fast.communicate(timeout=30)
        assert fast.returncode == 0, said
    assert doc["status"] == "SUCCEEDED" and doc["details"] == {"done": STEPS}
    # Every step by the process that claimed the job first: the fast host
    # (polling all along, its own clock a minute past every lease) took none.
    assert {pid for pid, _, _ in _journal(journal)} == {holder}
