"""Commands that only read a provider build it without what serving needs:
no client secret, no database, no encryption key for a job keeping tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .cli_support import Launched, cli_env
from .servers import aptools_cli, free_port

pytestmark = pytest.mark.e2e

LONGJOB = "examples.longjob.app"  # @provider.job(keep_tokens=True)


def test_openapi_reads_a_provider_that_keeps_tokens_without_a_key(
    tmp_path: Path,
) -> None:
    done = aptools_cli("openapi", LONGJOB, cwd=tmp_path, env=cli_env())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["openapi"].startswith("3.1")
    assert not list(tmp_path.iterdir())  # no store was opened here


def test_fakeauth_reads_a_provider_that_keeps_tokens_without_a_key(
    tmp_path: Path,
) -> None:
    port = str(free_port())
    with Launched(
        "fakeauth", LONGJOB, "--port", port, cwd=tmp_path, env=cli_env()
    ) as fake:
        said = fake.wait_for(lambda out: "Ctrl-C" in out)
    assert "/action_all" in said  # the scope read from the provider


def test_register_dry_run_reads_it_too(tmp_path: Path) -> None:
    # Nothing answers at this Globus Auth: the provider was read, then the
    # first call to Globus Auth failed, as one line.
    env = cli_env(
        GLOBUS_AUTH_TOKEN="t",
        GLOBUS_SDK_SERVICE_URL_AUTH=f"http://127.0.0.1:{free_port()}/",
    )
    done = aptools_cli("register", LONGJOB, "--dry-run", cwd=tmp_path, env=env)
    assert done.returncode == 1 and "cannot reach Globus Auth" in done.stderr
    assert "encryption key" not in done.stderr
