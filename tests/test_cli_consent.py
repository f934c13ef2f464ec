"""The command-line loop of consent: ``aptools dev --withhold-consent`` and
``aptools fakeauth consent``, as printed: INACTIVE, consent, resume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from globus_sdk.gare import to_gare

from .cli_support import Launched, cli_env
from .servers import ROOT, free_port

pytestmark = pytest.mark.e2e

TRANSFER = "urn:globus:auth:scope:transfer.api.globus.org:all"


def _bash(script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        ["bash", "-c", "set -e\n" + script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


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
        printed = lines[lines.index("Try it:") + 1 : lines.index("Ctrl-C stops.")]
        # Every printed command, in order, in one shell, as a reader pastes them.
        script, said = [f"cd {tmp_path}"], []
        for line in printed:
            if line.startswith("#"):
                said.append(line)
            elif line.strip() and not line.startswith("Consent:"):
                script += [f"echo '@@@ {len(said)}'", line]
        ran = _bash("\n".join(script), timeout=180)
        assert ran.returncode == 0, ran.stdout + ran.stderr
    answers: dict[str, str] = {}
    for chunk in ran.stdout.split("@@@ ")[1:]:
        step, _, out = chunk.partition("\n")
        answers[said[int(step) - 1]] = answers.get(said[int(step) - 1], "") + out
    step1 = next(k for k in answers if k.startswith("#    a consent request"))
    waiting = json.loads(answers[step1].strip().splitlines()[-1])
    assert waiting["status"] == "INACTIVE", waiting
    assert waiting["details"]["code"] == "ConsentRequired"
    assert to_gare(waiting["details"]) is not None
    assert f"alice consented to {TRANSFER}" in answers["# 2. she consents:"]
    step3 = next(k for k in answers if k.startswith("# 3."))
    resumed = json.loads(answers[step3])
    assert resumed["status"] == "ACTIVE", resumed
    assert resumed["action_id"] == waiting["action_id"]  # still there to resume
    step4 = next(k for k in answers if k.startswith("# 4."))
    ended, released = (json.loads(x) for x in answers[step4].strip().splitlines())
    assert ended["status"] == "SUCCEEDED", ended
    assert ended["details"] == {"done": 5, "steps": 5}
    assert released["action_id"] == waiting["action_id"]


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


def test_fakeauth_skews_its_clock_and_shortens_token_lifetimes(tmp_path: Path) -> None:
    import re
    import time

    import requests

    from aptools.cli.fakeauth import DEV_TOKENS, TOKEN_LIFETIME

    args = ["fakeauth", "--port", str(free_port()), "--clock-offset", "-3600"]
    args += ["--token-lifetime", "3", "--rotate-refresh-tokens"]
    with Launched(*args, cwd=tmp_path, env=cli_env()) as proc:
        said = proc.wait_for(lambda out: "Ctrl-C" in out)
        assert "clock: -3600 s" in said and "live 3 s" in said and "rotate" in said
        exported = dict(re.findall(r"^export (\w+)=(\S+)$", said, re.MULTILINE))
        base = exported["GLOBUS_SDK_SERVICE_URL_AUTH"].strip("'")
        client = (exported["APTOOLS_CLIENT_ID"], exported["APTOOLS_CLIENT_SECRET"])
        seen = requests.post(
            base + "v2/oauth2/token/introspect",
            data={"token": DEV_TOKENS["alice"]},
            auth=client,
            timeout=10,
        ).json()
        # Its tokens expire by its clock, an hour behind this host's.
        assert abs(seen["exp"] - (time.time() - 3600 + TOKEN_LIFETIME)) < 120
        granted = requests.post(
            base + "v2/oauth2/token",
            data={
                "grant_type": "urn:globus:auth:grant_type:dependent_token",
                "token": DEV_TOKENS["alice"],
                "access_type": "offline",
                "scope": TRANSFER,
            },
            auth=client,
            timeout=10,
        ).json()
        assert granted[0]["expires_in"] == 3
        old = granted[0]["refresh_token"]
        refresh = {"grant_type": "refresh_token", "refresh_token": old}
        again = requests.post(
            base + "v2/oauth2/token", data=refresh, auth=client, timeout=10
        )
        assert again.json()["refresh_token"] != old  # rotated
        voided = requests.post(
            base + "v2/oauth2/token", data=refresh, auth=client, timeout=10
        )
        assert voided.status_code == 400
    from .servers import aptools_cli

    bad = aptools_cli("fakeauth", "--token-lifetime", "0", cwd=tmp_path, env=cli_env())
    assert bad.returncode == 2 and "whole seconds" in bad.stderr
