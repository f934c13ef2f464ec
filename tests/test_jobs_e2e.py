"""End to end: the longjob example under real gunicorn (2 workers) and uvicorn,
over HTTP, with SQLite: kill -9 mid-job, restart, SIGTERM hand-back."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from aptools.testing import FakeGlobusAuth, FakeIdentity, waiting

from .servers import ROOT, Server

pytestmark = pytest.mark.e2e

KEY = Fernet.generate_key().decode()
# A dead process's job is taken over after 4 s rather than the example's 10
# (a live one renews its lease every 1.3 s, so a loaded machine keeps it),
# and a process looks for jobs every 0.2 s.
FAST_TAKE_OVER = {"LONGJOB_LEASE": "4", "LONGJOB_POLL_INTERVAL": "0.2"}


@pytest.fixture(params=["gunicorn", "uvicorn"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def longjob(kind: str, auth: FakeGlobusAuth, path: Path) -> Server:
    server = Server(kind, "examples.longjob.app", "/longjob", auth, f"sqlite:///{path}")
    server.env["LONGJOB_SCOPE"] = auth.scope
    server.env["APTOOLS_ENCRYPTION_KEY"] = KEY
    server.env.update(FAST_TAKE_OVER)
    return server


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Over HTTP to real servers: a longer bound, a slower poll."""
    return waiting.wait_for(check, what, timeout, every=0.1)


def family(pid: int) -> list[int]:
    """``pid`` and every process descending from it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        at = todo.pop()
        found.append(at)
        todo.extend(children.get(at, ()))
    return found


def kill_all(server: Server) -> None:
    """SIGKILL every serving process at once: nothing gets to clean up."""
    assert server.proc is not None
    for pid in family(server.proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.proc.wait()
    server.stop()  # closes what is left: the process is gone already


def test_killed_mid_job_the_job_goes_on_from_its_checkpoint(
    kind: str, auth: FakeGlobusAuth, alice: FakeIdentity, tmp_path: Path
) -> None:
    db = tmp_path / "actions.db"
    steps = 30
    seen: list[int] = []

    def done(server: Server, action_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = server.call(
            "GET", f"/{action_id}/status", alice.token
        ).json()
        seen.append(doc["details"]["done"])
        return doc

    first = longjob(kind, auth, db).start()
    try:
        started = first.call(
            "POST",
            "/run",
            alice.token,
            # With a scope, every step acts as the caller: after the restart
            # only the kept (encrypted) refresh token can do that.
            json={
                "request_id": "k9",
                "body": {"steps": steps, "step_seconds": 0.1, "scope": auth.scope},
            },
        )
        assert started.status_code == 202, started.text
        assert started.json()["details"] == {"done": 0, "steps": steps}
        action_id = started.json()["action_id"]
        wait_for(lambda: done(first, action_id)["details"]["done"] >= 3, "3 steps")
    finally:
        kill_all(first)
    with longjob(kind, auth, db) as second:
        end = wait_for(
            lambda: (d := done(second, action_id))["status"] != "ACTIVE" and d,
            "the job finished after the restart",
        )
        log = second.call(
            "GET", f"/{action_id}/log", alice.token, params={"limit": 1000}
        ).json()
        said = second.said()
    assert "fake-refresh-" not in said
    assert end["status"] == "SUCCEEDED", end
    assert end["details"] == {"done": steps, "steps": steps}
    assert seen == sorted(seen), "done went backwards"
    described = [e["description"] for e in log["entries"]]
    # Taken over from the checkpoint: no step was done twice.
    assert len(described) == len(set(described)) >= steps - 1
    assert {e["code"] for e in log["entries"]} == {"StepDone"}


def test_sigterm_hands_running_jobs_back(
    kind: str, auth: FakeGlobusAuth, alice: FakeIdentity, tmp_path: Path
) -> None:
    db = tmp_path / "actions.db"
    server = longjob(kind, auth, db).start()
    try:
        action_id = server.call(
            "POST",
            "/run",
            alice.token,
            json={"request_id": "t", "body": {"steps": 100, "step_seconds": 0.2}},
        ).json()["action_id"]
        wait_for(
            lambda: (
                server.call("GET", f"/{action_id}/status", alice.token).json()[
                    "details"
                ]["done"]
                >= 1
            ),
            "a step done",
        )
        with sqlite3.connect(db) as conn:
            [(owner, lease)] = conn.execute(
                "SELECT owner, lease_until FROM aptools_jobs"
            ).fetchall()
        assert owner is not None and lease > time.time()
    finally:
        server.stop()  # SIGTERM, as a deploy does
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT action_id, owner, lease_until, attempts FROM aptools_jobs"
        ).fetchall()
    # Handed back at once, the ended process counted toward max_attempts.
    assert rows == [(action_id, None, 0, 1)]


def test_longjob_contract(
    kind: str, auth: FakeGlobusAuth, alice: FakeIdentity, tmp_path: Path
) -> None:
    with longjob(kind, auth, tmp_path / "actions.db") as server:

        def run(request_id: str, body: dict[str, Any], **extra: Any) -> str:
            got = server.call(
                "POST",
                "/run",
                alice.token,
                json={"request_id": request_id, "body": body, **extra},
            )
            assert got.status_code == 202, got.text
            assert got.json()["status"] == "ACTIVE"
            return str(got.json()["action_id"])

        def end(action_id: str) -> dict[str, Any]:
            return wait_for(  # type: ignore[no-any-return]
                lambda: (
                    (
                        d := server.call(
                            "GET", f"/{action_id}/status", alice.token
                        ).json()
                    )["status"]
                    != "ACTIVE"
                    and d
                ),
                "the action ended",
            )

        ok = run("ok", {"steps": 3, "step_seconds": 0})
        failing = run("fail", {"steps": 5, "step_seconds": 0, "fail_at": 2})
        slow = run("slow", {"steps": 3600, "step_seconds": 1})
        deadline = time.strftime(
            "%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 2)
        )
        late = run("late", {"steps": 100, "step_seconds": 1}, deadline=deadline)
        scoped = run("scope", {"steps": 2, "step_seconds": 0, "scope": auth.scope})
        assert end(ok)["details"] == {"done": 3, "steps": 3}
        failed = end(failing)
        assert failed["status"] == "FAILED"
        assert failed["details"]["done"] == 1
        assert "step 2" in failed["details"]["description"]
        canceled = server.call("POST", f"/{slow}/cancel", alice.token).json()
        assert canceled["status"] == "FAILED"
        assert "cancel" in canceled["display_status"].lower()
        assert canceled["details"]["done"] < 3600
        past = end(late)
        assert past["status"] == "FAILED"
        assert "deadline" in past["display_status"].lower()
        assert end(scoped)["status"] == "SUCCEEDED"
        assert "fake-refresh-" not in server.said()
        listed = server.call(
            "GET", "/actions", alice.token, params={"status": "SUCCEEDED,FAILED"}
        ).json()
        assert {ok, failing, slow, late, scoped} <= {a["action_id"] for a in listed}


def test_a_worker_process_takes_over_and_runs_jobs(
    auth: FakeGlobusAuth, alice: FakeIdentity, tmp_path: Path
) -> None:
    db = tmp_path / "actions.db"
    server = longjob("uvicorn", auth, db).start()
    try:
        action_id = server.call(
            "POST",
            "/run",
            alice.token,
            json={"request_id": "w", "body": {"steps": 6, "step_seconds": 0.3}},
        ).json()["action_id"]
    finally:
        kill_all(server)  # the job is left to the worker
    worker = subprocess.Popen(
        [sys.executable, "-m", "aptools.cli", "worker", "examples.longjob.app"],
        cwd=ROOT,
        env=server.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def public() -> dict[str, Any]:
            with sqlite3.connect(db) as conn:
                [(doc,)] = conn.execute("SELECT public FROM aptools_actions").fetchall()
            return json.loads(doc)  # type: ignore[no-any-return]

        end = wait_for(lambda: (d := public())["status"] != "ACTIVE" and d, "done")
        assert end["status"] == "SUCCEEDED"
        assert end["details"] == {"done": 6, "steps": 6}
    finally:
        worker.send_signal(signal.SIGTERM)
        _, said = worker.communicate(timeout=30)
    assert worker.returncode == 0, said
    assert end["action_id"] == action_id
