"""``aptools dev`` prints curl commands that work exactly as printed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aptools.testing import FakeGlobusAuth

from .servers import ROOT, aptools_cli, free_port

pytestmark = pytest.mark.e2e


def _start_dev(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aptools.cli", "dev", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    lines: list[str] = []
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Ctrl-C"):
            return proc, lines
    proc.kill()
    proc.communicate()
    raise AssertionError("dev did not start:\n" + "\n".join(lines))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("face", ["wsgi", "asgi"])
def test_dev_commands_work_as_printed(tmp_path: Path, face: str) -> None:
    port = free_port()
    args = ["examples.watchasay.app", "--port", str(port)] + (
        ["--asgi"] if face == "asgi" else []
    )
    proc, lines = _start_dev(args, tmp_path)
    try:
        commands = [
            lines[i + 1] for i, line in enumerate(lines) if line.startswith("# ")
        ]
        assert len(commands) == 5
        script = "set -e\n" + "\n".join(
            f"{command}\necho '<<<'" for command in commands
        )
        done = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        outputs = [part.strip() for part in done.stdout.split("<<<")][:5]
        about, _, status, released, refused = (
            json.loads(o) if o else {} for o in outputs
        )
        assert about["title"] == "What Did You Say?"
        ran = json.loads(done.stderr.strip().splitlines()[0])
        assert ran["details"] == {"you_said": "hello"}
        assert status["action_id"] == ran["action_id"] == released["action_id"]
        assert refused["code"] == "AuthenticationFailed"
        assert (tmp_path / ".aptools" / "dev-actions.db").exists()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_dev_refuses_other_addresses(tmp_path: Path) -> None:
    done = aptools_cli(
        "dev", "examples.watchasay.app", "--host", "0.0.0.0", cwd=tmp_path, timeout=30
    )
    assert done.returncode == 2
    assert "development" in done.stderr and "0.0.0.0" in done.stderr


def test_check_prints_routes(tmp_path: Path) -> None:
    done = aptools_cli("check", "examples.countdown.app", cwd=tmp_path, timeout=30)
    assert done.returncode == 0, done.stderr
    assert '"title": "Countdown"' in done.stdout
    assert "GET            /countdown/actions/{action_id}/log" in done.stdout
    assert "DELETE GET     /countdown/actions/{action_id}" in done.stdout


def _env(auth: FakeGlobusAuth | None = None, **extra: str) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **extra}
    if auth is not None:
        env.update(auth.env())
        env["WATCHASAY_SCOPE"] = env["COUNTDOWN_SCOPE"] = auth.scope
    return env


def test_check_fails_loudly(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(
        "from aptools import Provider\n"
        "provider = Provider(title='x', scope='s', admin_contact='a',"
        " input_schema={'type': 'object'})\n"
    )
    done = aptools_cli("check", "broken", cwd=tmp_path, env=_env(), timeout=30)
    assert done.returncode == 1
    assert "no run handler" in done.stderr
    missing = aptools_cli(
        "check", "no_such_module", cwd=tmp_path, env=_env(), timeout=30
    )
    assert missing.returncode == 1 and "no_such_module" in missing.stderr


def test_serve_checks_configuration_first(tmp_path: Path) -> None:
    done = aptools_cli(
        "serve",
        "examples.watchasay.app",
        cwd=tmp_path,
        env=_env(APTOOLS_CLIENT_ID="some-client"),
        timeout=30,
    )
    assert done.returncode == 1
    assert "APTOOLS_CLIENT_SECRET" in done.stderr


@pytest.mark.parametrize("face", ["--wsgi", "--asgi"])
def test_serve_and_call(tmp_path: Path, auth: FakeGlobusAuth, face: str) -> None:
    import requests

    port = free_port()
    env = _env(auth, APTOOLS_STORE=f"sqlite:///{tmp_path}/serve.db", HOME=str(tmp_path))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aptools.cli",
            "serve",
            "examples.countdown.app",
            face,
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/countdown"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/", timeout=1).status_code == 200:
                    break
            # A worker still booting holds the request past the timeout.
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        if face == "--wsgi":
            # Its own control socket: a second server would not take this one's.
            control = tmp_path / ".gunicorn" / f"aptools-{port}.ctl"
            waited = time.monotonic() + 10  # opened after the workers boot
            while not control.exists() and time.monotonic() < waited:
                time.sleep(0.05)
            assert control.exists()
            assert not (tmp_path / ".gunicorn" / "gunicorn.ctl").exists()
        alice = auth.identity("alice@example.org")
        token = ["--token", alice.token]
        done = aptools_cli(
            "call",
            base,
            "run",
            *token,
            "--body",
            '{"seconds": 1}',
            "--wait",
            cwd=tmp_path,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        final = json.loads(done.stdout)
        assert final["status"] == "SUCCEEDED"
        assert "ACTIVE" in done.stderr  # progress was shown while waiting
        released = aptools_cli(
            "call", base, "release", final["action_id"], *token, cwd=tmp_path, env=env
        )
        assert released.returncode == 0
        assert json.loads(released.stdout)["status"] == "SUCCEEDED"
        gone = aptools_cli(
            "call", base, "status", final["action_id"], *token, cwd=tmp_path, env=env
        )
        assert gone.returncode == 1 and "NotFound" in gone.stderr
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_tcp_listener_hands_nodelay_to_every_connection() -> None:
    # aptools serve --asgi --workers N gives uvicorn this socket (--fd): the
    # connections it accepts must not wait on Nagle's algorithm.
    import socket

    from aptools.cli import tcp_listener

    bound = tcp_listener("127.0.0.1", 0)
    try:
        assert bound.get_inheritable()
        bound.listen()
        with socket.create_connection(bound.getsockname(), timeout=5):
            accepted, _ = bound.accept()
            with accepted:
                nodelay = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert nodelay != 0
    finally:
        bound.close()


def test_serve_says_when_the_port_is_taken(
    tmp_path: Path, auth: FakeGlobusAuth
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = aptools_cli(
            "serve",
            "examples.watchasay.app",
            "--asgi",
            "--workers",
            "2",
            "--port",
            str(port),
            cwd=tmp_path,
            env=_env(auth, APTOOLS_STORE=f"sqlite:///{tmp_path}/a.db"),
            timeout=30,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
