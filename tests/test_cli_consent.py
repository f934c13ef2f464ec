"""The command-line loop of consent: ``aptools dev --withhold-consent`` and
``aptools fakeauth consent``, as printed: INACTIVE, consent, resume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from globus_sdk.gare import to_gare

from .cli_support import Launched, cli_env
from .servers import ROOT, free_port

pytestmark = pytest.mark.e2e

TRANSFER = "urn:globus:auth:scope:transfer.api.globus.org:all"


def _bash(script: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        ["bash", "-c", "set -e\n" + script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _until(status: str, wanted: str) -> dict[str, Any]:
    """The action's status document once it is ``wanted`` (polled as printed)."""
    poll = (
        f"for i in $(seq 300); do s=$({status}); case $s in "
        f'*\'"status":"{wanted}"\'*) echo "$s"; exit 0;; esac; sleep 0.1; done; '
        'echo "$s"'
    )
    done = _bash(poll)
    doc: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return doc


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("face", ["wsgi", "asgi"])
def test_dev_shows_the_consent_loop_on_the_command_line(
    tmp_path: Path, face: str
) -> None:
    args = ["dev", "examples.longjob.app", "--port", str(free_port())]
    args += ["--withhold-consent", TRANSFER]
    args += ["--asgi"] if face == "asgi" else []
    with Launched(*args, cwd=tmp_path, env=cli_env()) as proc:
        lines = proc.wait_for(lambda out: "Ctrl-C" in out).splitlines()
        run = lines[lines.index(next(x for x in lines if x.startswith("# run an"))) + 1]
        status = lines[lines.index("# its status, as alice") + 1]
        grant = next(x for x in lines if x.startswith("aptools fakeauth consent grant"))
        resume = lines[lines.index(next(x for x in lines if x.startswith("# 3."))) + 1]
        body = f'"steps": 1, "step_seconds": 0, "scope": "{TRANSFER}"'
        run = run.replace('"steps": 5', body)
        started = _bash(f"cd {tmp_path}\n{run}\necho $ACTION_ID > id")
        assert started.returncode == 0, started.stderr
        status = status.replace("$ACTION_ID", "$(cat id)")
        waiting = _until(f"cd {tmp_path} && {status}", "INACTIVE")
        assert waiting["details"]["code"] == "ConsentRequired"
        assert to_gare(waiting["details"]) is not None
        granted = _bash(
            grant.replace("aptools ", f"{sys.executable} -m aptools.cli ", 1)
        )
        assert granted.returncode == 0, granted.stderr
        assert f"alice consented to {TRANSFER}" in granted.stdout
        resumed = _bash(f"cd {tmp_path}\n" + resume.replace("$ACTION_ID", "$(cat id)"))
        assert json.loads(resumed.stdout).get("status") == "ACTIVE", (
            resumed.stdout + resume
        )
        done = _until(f"cd {tmp_path} && {status}", "SUCCEEDED")
        assert done["details"] == {"done": 1, "steps": 1}


def test_fakeauth_consent_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    from .servers import aptools_cli

    usage = aptools_cli("fakeauth", "consent", "give", "x", cwd=tmp_path, env=cli_env())
    assert usage.returncode == 2 and "grant|revoke|withhold" in usage.stderr
    port = free_port()
    nobody = aptools_cli(
        "fakeauth",
        "consent",
        "grant",
        TRANSFER,
        "--url",
        f"http://127.0.0.1:{port}/",
        cwd=tmp_path,
        env=cli_env(),
    )
    assert nobody.returncode == 1
    assert "no fake Globus Auth answers" in nobody.stderr
    assert "Traceback" not in nobody.stderr


def test_fakeauth_and_openapi_need_no_encryption_key(tmp_path: Path) -> None:
    from .servers import aptools_cli

    env = cli_env(APTOOLS_STORE="memory:")  # no APTOOLS_ENCRYPTION_KEY
    printed = aptools_cli("openapi", "examples.longjob.app", cwd=tmp_path, env=env)
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout)["openapi"].startswith("3.1")
    args = ["fakeauth", "examples.longjob.app", "--port", str(free_port())]
    with Launched(*args, cwd=tmp_path, env=env) as proc:
        proc.wait_for(lambda out: "Ctrl-C" in out)
    client = {"APTOOLS_CLIENT_ID": "c", "APTOOLS_CLIENT_SECRET": "s"}
    refused = aptools_cli(
        "worker", "examples.longjob.app", cwd=tmp_path, env={**env, **client}
    )
    assert refused.returncode == 1
    assert "APTOOLS_ENCRYPTION_KEY" in refused.stderr
    serve = ["serve", "examples.longjob.app", "--no-auth-check", "--workers", "1"]
    refused = aptools_cli(*serve, cwd=tmp_path, env={**env, **client})
    assert refused.returncode == 1
    assert "APTOOLS_ENCRYPTION_KEY" in refused.stderr
