"""The README's provider and its test, run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .servers import ROOT


def test_readme_provider_and_test_work(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (provider,) = [b for b in blocks if b.startswith("# echo.py")]
    (test,) = [b for b in blocks if "def test_echo" in b]
    (tmp_path / "echo.py").write_text(provider)
    # Twice, as a suite has more than one test: each must get a provider
    # built against its own fake Globus Auth.
    again = test.replace("def test_echo(", "def test_echo_again(")
    (tmp_path / "test_echo.py").write_text(test + "\n\n" + again)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_echo.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed" in done.stdout
