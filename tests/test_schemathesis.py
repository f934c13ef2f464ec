"""schemathesis against each served example: no server error, no answer that
breaks the provider's own OpenAPI document."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aptools.testing import FakeGlobusAuth

from .servers import ROOT, Server

pytestmark = pytest.mark.e2e

EXAMPLES = [
    ("examples.watchasay.app", "/skeleton"),
    ("examples.countdown.app", "/countdown"),
]


@pytest.fixture(params=EXAMPLES, ids=[name for name, _ in EXAMPLES])
def served(
    request: pytest.FixtureRequest, auth: FakeGlobusAuth, tmp_path: Path
) -> Iterator[Server]:
    module, prefix = request.param
    with Server(
        "uvicorn", module, prefix, auth, f"sqlite:///{tmp_path}/s.db"
    ) as server:
        yield server


def test_schemathesis_finds_nothing(served: Server, auth: FakeGlobusAuth) -> None:
    alice = auth.identity("fuzzer@example.org")
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli is not None, "schemathesis is part of the test dependencies"
    done = subprocess.run(
        [
            cli,
            "--config-file",
            str(ROOT / "schemathesis.toml"),
            "run",
            served.url + "/openapi.json",
            "--header",
            f"Authorization: Bearer {alice.token}",
            "--checks",
            "all",
            "--max-examples",
            "40",
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
