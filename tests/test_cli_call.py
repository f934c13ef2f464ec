"""``aptools call``: answers, waits, exit statuses, and failures as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aptools import ActionFailed, ActionStatus, Provider
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .cli_support import Launched, ThreadServer, cli_env, served
from .servers import ROOT, aptools_cli, free_port

pytestmark = pytest.mark.e2e

SCOPE_NEEDED = (
    "urn:globus:auth:scope:transfer.api.globus.org:all"
    "[*https://auth.globus.org/scopes/abc/data_access]"
)


def _provider(auth: FakeGlobusAuth, **kw: Any) -> Provider:
    return Provider(
        title="Called",
        scope=auth.scope,
        admin_contact="ops@example.org",
        prefix="/called",
        input_schema={"type": "object"},
        store="memory:",
        **kw,
    )


@pytest.fixture
def called(auth: FakeGlobusAuth, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A provider whose run does what its body says; its URL."""
    provider = _provider(auth)
    marker = tmp_path / "done"

    @provider.run
    def run(request: Any, caller: Any) -> Any:
        body = request.body
        if body.get("fail"):
            raise ActionFailed({"reason": "the work could not be done"})
        if "consent" in body:
            return ActionStatus.inactive(body["consent"], display_status="Consent")
        if body.get("big"):
            return ActionStatus.succeeded({"text": "x" * 300_000})
        return ActionStatus.active({"step": 0})

    @provider.status
    def status(action: Any, caller: Any) -> Any:
        if action.status == "INACTIVE":  # waits for resume
            return ActionStatus.inactive(action.details)
        return {"finished": True} if marker.exists() else ActionStatus.active()

    @provider.resume
    def resume(action: Any, caller: Any) -> Any:
        return ActionStatus.succeeded({"resumed": True})

    @provider.enumerate
    def enumerate_actions(query: Any, caller: Any) -> Any:
        return query.actions

    with served(provider.wsgi()) as server:
        yield f"http://127.0.0.1:{server.port}/called", marker


def call(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return aptools_cli("call", *args, cwd=cwd, env=cli_env(), timeout=60)


def test_nothing_listening_is_one_line_and_its_own_exit_status(
    tmp_path: Path,
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/called"
    for args in (
        ["status", "some-action"],
        ["run", "--body", "{}"],
        ["enumerate"],
        ["resume", "some-action"],
    ):
        done = call(nowhere, *args, "--token", "t", cwd=tmp_path)
        assert done.returncode == 5, done.stderr
        assert done.stderr.count("\n") == 1 and "cannot reach" in done.stderr
        assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_bad_body_is_a_usage_error_exit_2(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/called"
    for body in ("{bad", "@" + str(tmp_path / "missing.json")):
        done = call(nowhere, "run", "--body", body, "--token", "t", cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("aptools call: --body"), done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_an_error_answer_is_one_line_and_exit_1(
    tmp_path: Path, called: tuple[str, Path], alice: FakeIdentity
) -> None:
    url, _ = called
    done = call(url, "status", "no-such-action", "--token", alice.token, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("aptools call: HTTP 404 NotFound")
    assert done.stderr.count("\n") == 1
    refused = call(url, "status", "no-such-action", "--token", "bad", cwd=tmp_path)
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr


def test_run_wait_exit_status_follows_the_action(
    tmp_path: Path, called: tuple[str, Path], alice: FakeIdentity
) -> None:
    url, marker = called
    token = ["--token", alice.token]
    failed = call(
        url, "run", *token, "--body", '{"fail": true}', "--wait", cwd=tmp_path
    )
    assert failed.returncode == 1 and "FAILED" in failed.stderr
    assert json.loads(failed.stdout)["status"] == "FAILED"
    marker.touch()
    done = call(url, "run", *token, "--wait", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["details"] == {"finished": True}


@pytest.mark.parametrize(
    "details",
    [
        {"code": "ConsentRequired", "required_scope": SCOPE_NEEDED},
        {"authorization_parameters": {"required_scopes": [SCOPE_NEEDED]}},
    ],
)
def test_run_wait_stops_on_inactive_printing_the_scope(
    tmp_path: Path, called: tuple[str, Path], alice: FakeIdentity, details: Any
) -> None:
    url, _ = called
    body = json.dumps({"consent": details})
    token = ["--token", alice.token]
    done = call(url, "run", *token, "--body", body, "--wait", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert SCOPE_NEEDED in done.stderr and " resume " in done.stderr
    action = json.loads(done.stdout)
    assert action["status"] == "INACTIVE"
    seen = call(url, "status", action["action_id"], *token, cwd=tmp_path)
    assert seen.returncode == 0 and json.loads(seen.stdout)["status"] == "INACTIVE"
    resumed = call(url, "resume", action["action_id"], *token, "--wait", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["details"] == {"resumed": True}


def test_timeout_bounds_every_wait(
    tmp_path: Path, called: tuple[str, Path], alice: FakeIdentity
) -> None:
    url, _ = called
    token = ["--token", alice.token, "--timeout", "1.5"]
    waiting = call(url, "run", *token, "--wait", cwd=tmp_path)
    assert waiting.returncode == 4 and "--timeout" in waiting.stderr
    assert "Traceback" not in waiting.stderr
    nowhere = f"http://127.0.0.1:{free_port()}/called"
    retrying = call(nowhere, "run", *token, "--wait", cwd=tmp_path)
    assert retrying.returncode == 4 and "trying again" in retrying.stderr


def test_run_wait_rides_out_a_server_restart(
    tmp_path: Path, auth: FakeGlobusAuth, alice: FakeIdentity
) -> None:
    provider = _provider(auth)
    marker = tmp_path / "done"
    provider.run(lambda request, caller: ActionStatus.active())

    @provider.status
    def status(action: Any, caller: Any) -> Any:
        return {"finished": True} if marker.exists() else ActionStatus.active()

    server = ThreadServer(provider.wsgi()).start()
    url = f"http://127.0.0.1:{server.port}/called"
    args = ("call", url, "run", "--token", alice.token, "--wait", "--timeout", "60")
    with Launched(*args, cwd=tmp_path, env=cli_env()) as waiting:
        try:
            waiting.wait_for(lambda said: "ACTIVE" in said)
            server.stop()  # the server goes away while the action runs ...
            waiting.wait_for(lambda said: "trying again" in said)
            marker.touch()
            server.start()  # ... and comes back on the same port
            assert waiting.exit_status(timeout=60) == 0, waiting.said()
        finally:
            server.stop()
        assert '"finished": true' in waiting.said()


def test_enumerate_with_status_and_roles(
    tmp_path: Path, called: tuple[str, Path], alice: FakeIdentity, bob: FakeIdentity
) -> None:
    url, _ = called
    mine = call(url, "run", "--token", alice.token, cwd=tmp_path)
    shared = call(
        url, "run", "--token", bob.token, "--monitor-by", alice.urn, cwd=tmp_path
    )
    assert mine.returncode == shared.returncode == 0  # both ACTIVE
    mine_id, shared_id = (json.loads(d.stdout)["action_id"] for d in (mine, shared))

    def ids(*args: str) -> set[str]:
        done = call(url, "enumerate", "--token", alice.token, *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return {a["action_id"] for a in json.loads(done.stdout)}

    assert mine_id in ids() and shared_id not in ids()
    assert shared_id in ids("--roles", "monitor_by")
    assert ids("--status", "SUCCEEDED") & {mine_id, shared_id} == set()


def test_a_closed_pipe_is_no_traceback(
    tmp_path: Path, called: tuple[str, Path], alice: FakeIdentity
) -> None:
    url, _ = called
    command = [sys.executable, "-m", "aptools.cli", "call", url, "run"]
    command += ["--token", alice.token, "--body", '{"big": true}']
    done = subprocess.run(
        ["bash", "-c", " ".join(f"'{c}'" for c in command) + " | head -c 20"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**cli_env(), "PYTHONPATH": str(ROOT)},
    )
    assert len(done.stdout) == 20
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


@pytest.mark.parametrize("command", ["call", "flowtest"])
@pytest.mark.parametrize(
    "url", ["notaurl", "ftp://127.0.0.1/x", "http://", "http://x:99999", "http://[::1"]
)
def test_a_url_that_is_not_http_is_a_usage_error(
    tmp_path: Path, command: str, url: str
) -> None:
    args = ["status", "some-action"] if command == "call" else []
    done = aptools_cli(command, url, *args, "--token", "t", cwd=tmp_path, env=cli_env())
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"aptools {command}: not a"), done.stderr
    assert repr(url) in done.stderr and "cannot reach" not in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_timeout_names_the_action_it_left_running(
    tmp_path: Path, called: tuple[str, Path], alice: FakeIdentity
) -> None:
    url, _ = called
    token = ["--token", alice.token]
    waiting = call(url, "run", *token, "--wait", "--timeout", "1.5", cwd=tmp_path)
    assert waiting.returncode == 4, waiting.stderr
    last = waiting.stderr.strip().splitlines()[-1]
    assert last.startswith("aptools call: --timeout passed; action ")
    action = last.split("action ")[1].split()[0]
    # It is there to follow, cancel or release.
    seen = call(url, "status", action, *token, cwd=tmp_path)
    assert seen.returncode == 0 and json.loads(seen.stdout)["status"] == "ACTIVE"
    assert f"status|cancel|release {action}" in last
    # Before any answer, it names the request id that finds the action again.
    nowhere = f"http://127.0.0.1:{free_port()}/called"
    ask = ["--request-id", "mine-1", "--timeout", "1.5", "--wait"]
    retrying = call(nowhere, "run", *token, *ask, cwd=tmp_path)
    assert retrying.returncode == 4
    assert "--request-id mine-1" in retrying.stderr.strip().splitlines()[-1]
