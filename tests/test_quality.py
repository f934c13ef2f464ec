"""The code stays ruff-clean, formatted and mypy-strict."""

from __future__ import annotations

import subprocess
import sys

from .servers import ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ruff_lint() -> None:
    done = _run("ruff", "check", "aptools", "tests", "examples", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format() -> None:
    done = _run(
        "ruff", "format", "--check", "aptools", "tests", "examples", "benchmarks"
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict() -> None:
    done = _run("mypy")
    assert done.returncode == 0, done.stdout + done.stderr
