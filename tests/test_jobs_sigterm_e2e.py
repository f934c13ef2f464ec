"""End to end: what SIGTERM does to each kind of job, under real gunicorn
(2 workers, the aptools worker class) and uvicorn, with ``aptools worker``
beside them, on SQLite and PostgreSQL: a job that is not resumable is never
started twice (it ends where it began, or FAILED "Interrupted" past
``stop_timeout``); a resumable one is handed back at once, not after the
requests in flight."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from aptools.store.registry import open_store
from aptools.testing import FakeGlobusAuth, FakeIdentity, waiting

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures
from .servers import ROOT, Server

pytestmark = pytest.mark.e2e

MODULE = textwrap.dedent(
    """
    import multiprocessing, os, time
    from aptools import Provider

    provider = Provider(title="Sig", scope=os.environ["SIG_SCOPE"],
                        admin_contact="ops@example.org", prefix="/sig",
                        input_schema={"type": "object"}, job_poll_interval=0.2)
    TRACE = os.environ["SIG_TRACE"]

    def note(text):
        with open(TRACE, "a") as f:
            f.write(f"{os.getpid()} {text}\\n")

    @provider.run
    def run(request, caller):
        if request.body.get("slow"):
            time.sleep(request.body["slow"])
            return {"slow": True}
        return {"queued": True}

    @provider.job(resumable=os.environ["SIG_KIND"] == "resumable", lease=30.0,
                  stop_timeout=float(os.environ["SIG_STOP_TIMEOUT"]))
    def work(action, caller, job):
        if action.body.get("slow"):
            return {"slow": True}
        note(f"start {job.attempt}")
        if os.environ["SIG_KIND"] == "pool":
            # Closing the pool sends SIGTERM to its forked workers.
            with multiprocessing.get_context("fork").Pool(2) as pool:
                total = sum(pool.map(abs, range(-5, 5)))
            job.wait(1.0)
            return {"total": total}
        if os.environ["SIG_KIND"] == "resumable":
            for step in range(job.checkpoint or 0, action.body.get("steps", 40)):
                if job.wait(0.1):
                    return None
                job.save_checkpoint(step + 1)
        else:
            time.sleep(float(action.body["seconds"]))  # never looks at the job
        note("end")
        return {"pid": os.getpid()}

    app = provider.wsgi()
    asgi = provider.asgi()
    """
)


class SigServer(Server):
    """The module above, under gunicorn with aptools' worker class (the one
    ``aptools serve`` uses) or uvicorn."""

    def command(self) -> list[str]:
        made = super().command()
        if self.kind == "gunicorn":
            made[-1:-1] = [
                "--worker-class",
                "aptools.cli.gworker.ThreadWorker",
                "--threads",
                "4",
                "--graceful-timeout",
                "20",
            ]
        return made


@pytest.fixture(params=["gunicorn", "uvicorn"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'actions.db'}"
    return str(request.getfixturevalue("pg_url"))


class Scene:
    def __init__(
        self, kind: str, auth: FakeGlobusAuth, tmp: Path, job: str, url: str
    ) -> None:
        (tmp / "sigmod.py").write_text(MODULE)
        self.trace = tmp / "trace.txt"
        self.trace.touch()
        self.store = open_store(url).for_provider(f"{auth.scope} /sig")
        self.server = SigServer(kind, "sigmod", "/sig", auth, url)
        self.server.env.update(
            PYTHONPATH=f"{tmp}{os.pathsep}{ROOT}",
            SIG_SCOPE=auth.scope,
            SIG_TRACE=str(self.trace),
            SIG_KIND=job,
            SIG_STOP_TIMEOUT="8",
        )
        self.tmp = tmp
        self.worker: subprocess.Popen[bytes] | None = None

    def start(self, stop_timeout: float = 8.0) -> None:
        self.server.env["SIG_STOP_TIMEOUT"] = str(stop_timeout)
        self.server.start()

    def start_worker(self) -> None:
        """``aptools worker`` beside the server (once the server runs the job)."""
        said = self.tmp / "worker.log"
        with said.open("wb") as log:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "aptools.cli", "worker", "sigmod"],
                cwd=self.tmp,
                env=self.server.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_for(lambda: "running the jobs" in said.read_text(), "the worker runs")

    def events(self) -> list[tuple[int, str]]:
        lines = self.trace.read_text().splitlines()
        return [(int(pid), what) for pid, what in (x.split(" ", 1) for x in lines)]

    def public(self, action_id: str) -> dict[str, Any]:
        """The action as stored (read from the store, the servers stopped)."""
        stored = self.store.get(action_id, time.time())
        assert stored is not None
        return orjson.loads(stored.public)  # type: ignore[no-any-return]

    def sigterm(self) -> None:
        assert self.server.proc is not None
        self.server.proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        self.store.close()
        self.server.stop()
        if self.worker is not None:
            self.worker.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.worker.wait(30)
            if self.worker.poll() is None:
                self.worker.kill()
                self.worker.wait()


@pytest.fixture
def scene(
    kind: str, auth: FakeGlobusAuth, tmp_path: Path, store_url: str
) -> Iterator[Any]:
    made: list[Scene] = []

    def make(job: str) -> Scene:
        made.append(Scene(kind, auth, tmp_path, job, store_url))
        return made[-1]

    yield make
    for one in made:
        one.close()


def wait_for(check: Any, what: str, timeout: float = 60.0) -> Any:
    return waiting.wait_for(check, what, timeout, every=0.1)


def run(scene: Scene, alice: FakeIdentity, body: dict[str, Any]) -> str:
    got = scene.server.call(
        "POST", "/actions", alice.token, json={"request_id": "job", "body": body}
    )
    assert got.status_code == 202, got.text
    return str(got.json()["action_id"])


def slow_request(scene: Scene, alice: FakeIdentity, seconds: float) -> threading.Thread:
    """A run request in flight while the server is told to stop."""

    def call() -> None:
        with contextlib.suppress(requests.RequestException):
            scene.server.call(
                "POST",
                "/actions",
                alice.token,
                json={"request_id": "slow", "body": {"slow": seconds}},
            )

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def test_sigterm_lets_a_job_that_is_not_resumable_end_and_never_starts_it_again(
    scene: Any, alice: FakeIdentity
) -> None:
    at = scene("plain")
    at.start(stop_timeout=15.0)
    action_id = run(at, alice, {"seconds": 5})
    wait_for(lambda: at.events(), "the job started")
    at.start_worker()
    slow = slow_request(at, alice, 2.0)
    time.sleep(0.3)  # the slow request in flight (a bound is not needed)
    at.sigterm()
    end = wait_for(
        lambda: (d := at.public(action_id))["status"] != "ACTIVE" and d, "end"
    )
    slow.join(30)
    time.sleep(1.0)  # a few of the worker's polls: it must start nothing
    assert end["status"] == "SUCCEEDED", end
    [(first, began), (same, ended)] = at.events()
    assert (began, ended, same) == ("start 1", "end", first)
    assert end["details"] == {"pid": first}
    assert first != at.worker.pid


def test_sigterm_ends_a_job_that_is_not_resumable_interrupted_after_stop_timeout(
    scene: Any, alice: FakeIdentity
) -> None:
    at = scene("plain")
    at.start(stop_timeout=1.0)
    action_id = run(at, alice, {"seconds": 60})
    wait_for(lambda: at.events(), "the job started")
    at.start_worker()
    began = time.monotonic()
    at.sigterm()
    end = wait_for(
        lambda: (d := at.public(action_id))["status"] != "ACTIVE" and d, "end"
    )
    took = time.monotonic() - began
    time.sleep(1.0)  # a few of the worker's polls: it must start nothing
    assert (end["status"], end["details"]["code"]) == ("FAILED", "Interrupted"), end
    assert "not resumable" in end["details"]["description"]
    assert took < 15, took  # stop_timeout, not the job's minute
    assert [what for _, what in at.events()] == ["start 1"]


def test_sigterm_hands_a_resumable_job_back_at_once_despite_requests_in_flight(
    scene: Any, alice: FakeIdentity
) -> None:
    at = scene("resumable")
    at.start()
    # 10 s of steps: still running once a loaded machine has started the worker.
    action_id = run(at, alice, {"steps": 100})
    wait_for(lambda: at.events(), "the job started")
    at.start_worker()
    slow = slow_request(at, alice, 8.0)
    time.sleep(0.5)  # the request in flight (a bound is not needed)
    began = time.monotonic()
    at.sigterm()
    wait_for(lambda: len(at.events()) >= 2, "the worker took the job over")
    took = time.monotonic() - began
    end = wait_for(
        lambda: (d := at.public(action_id))["status"] != "ACTIVE" and d, "end"
    )
    slow.join(30)
    assert took < 6, took  # not after the 8 s request in flight
    events = at.events()
    assert events[1] == (at.worker.pid, "start 2")  # the hand-back counted
    assert end["status"] == "SUCCEEDED", end
    assert end["details"] == {"pid": at.worker.pid}


def test_a_job_using_a_process_pool_runs_once_beside_a_worker(
    scene: Any, alice: FakeIdentity
) -> None:
    at = scene("pool")
    at.start()
    at.start_worker()
    ids = [
        at.server.call(
            "POST", "/actions", alice.token, json={"request_id": f"p{n}", "body": {}}
        ).json()["action_id"]
        for n in range(3)
    ]

    def ended() -> bool:
        return all(
            at.server.call("GET", f"/actions/{a}", alice.token).json()["status"]
            != "ACTIVE"
            for a in ids
        )

    wait_for(ended, "the three actions ended")
    for action_id in ids:
        doc = at.server.call("GET", f"/actions/{action_id}", alice.token).json()
        assert (doc["status"], doc["details"]) == ("SUCCEEDED", {"total": 25})
    # Each started once: no pool worker handed its parent's job back.
    assert [what for _, what in at.events()] == ["start 1"] * 3
