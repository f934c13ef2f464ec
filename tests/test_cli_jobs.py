"""The ``aptools`` command with background jobs: ``dev`` serves the longjob
example (with an encryption key of its own), ``worker`` runs jobs and
refuses what has none."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from .cli_support import Launched, cli_env
from .servers import ROOT, aptools_cli, free_port

pytestmark = pytest.mark.e2e


def _bash(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "set -e\n" + script], capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("face", ["wsgi", "asgi"])
def test_dev_runs_the_longjob_example_with_a_key_of_its_own(
    tmp_path: Path, face: str
) -> None:
    args = ["dev", "examples.longjob.app", "--port", str(free_port())]
    args += ["--asgi"] if face == "asgi" else []
    with Launched(*args, cwd=tmp_path, env=cli_env()) as proc:
        lines = proc.wait_for(lambda out: "Ctrl-C" in out).splitlines()
        key_file = tmp_path / ".aptools" / "encryption-key"
        assert any(".aptools/encryption-key" in line for line in lines)
        assert key_file.stat().st_mode & 0o077 == 0  # the owner's only
        key = key_file.read_text()
        assert key not in "\n".join(lines)  # named, never shown
        # The printed run, as printed but for one step, then its status.
        run = lines[
            lines.index(
                "# run an action as alice, shared with carol "
                "(monitor_by): id in $ACTION_ID"
            )
            + 1
        ]
        status = lines[lines.index("# its status, as alice") + 1]
        assert '"steps": 5' in run
        run = run.replace('"steps": 5', '"steps": 1, "step_seconds": 0')
        # Polled until it has ended (at most 200 times), as a user would.
        poll = (
            f'for i in $(seq 200); do out=$({status}); echo "$out"; '
            'case "$out" in *\\"SUCCEEDED\\"*|*\\"FAILED\\"*) break;; esac; '
            "sleep 0.1; done"
        )
        done = _bash(f"{run}\n{poll}")
        assert done.returncode == 0, done.stderr
        started = json.JSONDecoder().raw_decode(done.stderr.strip())[0]
        assert started["status"] == "ACTIVE"
        assert started["details"] == {"done": 0, "steps": 1}
        answers = [json.loads(line) for line in done.stdout.split("\n") if line.strip()]
        assert answers[-1]["status"] == "SUCCEEDED", answers[-1]
        assert answers[-1]["details"] == {"done": 1, "steps": 1}
    # Started again, it keeps the key it made (a given key wins).
    with Launched(*args, cwd=tmp_path, env=cli_env()) as again:
        again.wait_for(lambda out: "Ctrl-C" in out)
    assert key_file.read_text() == key


def test_worker_refuses_a_provider_without_a_job(tmp_path: Path) -> None:
    done = aptools_cli(
        "worker",
        "examples.watchasay.app",
        cwd=tmp_path,
        env=cli_env(
            APTOOLS_CLIENT_ID="c", APTOOLS_CLIENT_SECRET="s", APTOOLS_STORE="memory:"
        ),
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("aptools worker: ")
    assert "has no background job" in done.stderr
    assert "Traceback" not in done.stderr


def test_worker_names_a_module_that_is_not_there(tmp_path: Path) -> None:
    done = aptools_cli("worker", "nowhere.app", cwd=tmp_path, env=cli_env())
    assert done.returncode == 1
    assert "no module named 'nowhere.app'" in done.stderr


def test_worker_stops_at_sigterm_with_status_0(tmp_path: Path) -> None:
    env = cli_env(
        APTOOLS_CLIENT_ID="c",
        APTOOLS_CLIENT_SECRET="s",
        APTOOLS_STORE=f"sqlite:///{tmp_path}/a.db",
        APTOOLS_ENCRYPTION_KEY=Fernet.generate_key().decode(),
    )
    with Launched("worker", "examples.longjob.app", cwd=tmp_path, env=env) as proc:
        said = proc.wait_for(lambda out: "running the jobs of" in out)
        assert "'Long job'" in said
        proc.stop()
        assert proc.exit_status() == 0
    # The module form is the same command.
    shim = subprocess.run(
        [sys.executable, "-m", "aptools.jobs.worker", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shim.returncode == 0 and shim.stdout.startswith("usage: aptools worker")
