"""``aptools dev`` prints curl commands that work exactly as printed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .servers import ROOT, free_port

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
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aptools.cli",
            "dev",
            "examples.watchasay.app",
            "--host",
            "0.0.0.0",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2
    assert "development" in done.stderr and "0.0.0.0" in done.stderr


def test_check_prints_routes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "aptools.cli", "check", "examples.countdown.app"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert '"title": "Countdown"' in done.stdout
    assert "GET            /countdown/actions/{action_id}/log" in done.stdout
    assert "DELETE GET     /countdown/actions/{action_id}" in done.stdout
