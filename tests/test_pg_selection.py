"""Which PostgreSQL the test suite uses: a database of its own, on the server
``APTOOLS_TEST_POSTGRESQL_URL`` names (else the local one), dropped at the
end; none answering: skipped, and a failure under ``CI=true``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .pg import SERVER, VARIABLE, execute, require_server
from .servers import ROOT

PROBE = """
import psycopg
from tests.pg import DATABASE, URL, require_server

def test_probe():
    require_server()
    with psycopg.connect(URL) as conn:
        name = conn.execute(b"SELECT current_database()").fetchone()[0]
    print("DATABASE", name)
    assert name == DATABASE
"""


def _probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE)
    clean = {k: v for k, v in os.environ.items() if k not in (VARIABLE, "CI")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-s",
            "-rs",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_probe.py"),
        ],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tests_work_in_a_database_of_their_own_and_drop_it(
    tmp_path: Path,
) -> None:
    require_server()
    done = _probe(tmp_path, **{VARIABLE: SERVER})
    assert done.returncode == 0, done.stdout + done.stderr
    (name,) = [
        line.split()[1]
        for line in done.stdout.splitlines()
        if line.startswith("DATABASE")
    ]
    assert name.startswith("aptools_test_")
    gone = execute("SELECT count(*) FROM pg_database WHERE datname = %s", name)
    assert gone == [(0,)]


def test_no_server_skips_the_postgresql_tests(tmp_path: Path) -> None:
    done = _probe(tmp_path, **{VARIABLE: "postgresql://postgres@127.0.0.1:9/postgres"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert VARIABLE in done.stdout


def test_no_server_fails_under_ci(tmp_path: Path) -> None:
    done = _probe(
        tmp_path, CI="true", **{VARIABLE: "postgresql://postgres@127.0.0.1:9/postgres"}
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout
    assert VARIABLE in done.stdout
