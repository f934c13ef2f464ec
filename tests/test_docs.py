"""The documentation site: built with ``mkdocs build --strict`` (a broken link
or reference fails), its API reference covering every public name, and its
code examples marked runnable run as written."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import aptools
import aptools.testing
from aptools.testing import FakeGlobusAuth

from .servers import ROOT

DOCS = ROOT / "docs"
# A fenced python block right after the marker line; its first line names
# the file it is (``# echo.py``).
RUNNABLE = re.compile(
    r"^<!-- runnable -->\n```python\n(# (\w+)\.py\n.*?)^```", re.S | re.M
)


def _mkdocs() -> None:
    if importlib.util.find_spec("mkdocs") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mkdocs is not installed: pip install -e '.[test]'")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(config),
            "--site-dir",
            str(site),
        ],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    _mkdocs()
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-4000:]
    assert "WARNING" not in done.stderr, done.stderr[-4000:]
    site = tmp_path / "site"
    api = (site / "reference" / "api" / "index.html").read_text()
    # The reference is made from the docstrings.
    assert "An Action Provider: its description, its handlers, its settings." in api
    kit = (site / "reference" / "testing" / "index.html").read_text()
    # reST roles of the docstrings are shown as code, not as role text
    assert ":class:" not in api and ":meth:" not in kit
    assert "A Globus Auth + Groups stand-in serving HTTP on 127.0.0.1." in kit
    assert "Poll status every" in kit
    benchmarks = (site / "benchmarks" / "index.html").read_text()
    assert "What is measured" in benchmarks
    for page in (
        "tutorial/first-provider",
        "tutorial/background-jobs",
        "tutorial/consent",
        "tutorial/several-hosts",
        "how-to/test-a-provider",
        "how-to/deploy-behind-a-load-balancer",
        "how-to/rotate-the-encryption-key",
        "migrating",
    ):
        assert (site / page / "index.html").is_file(), page


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    _mkdocs()
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copytree(ROOT / "benchmarks", copy / "benchmarks")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    (copy / "aptools").symlink_to(ROOT / "aptools")
    page = copy / "docs" / "reference" / "errors.md"
    page.write_text(page.read_text() + "\nSee [nowhere](no-such-page.md).\n")
    done = build(copy / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr


def test_the_api_reference_names_every_public_name() -> None:
    api = (DOCS / "reference" / "api.md").read_text()
    kit = (DOCS / "reference" / "testing.md").read_text()
    assert [n for n in aptools.__all__ if f"::: aptools.{n}\n" not in api] == []
    kit_names = aptools.testing.__all__
    assert [n for n in kit_names if f"::: aptools.testing.{n}\n" not in kit] == []


def _runnable() -> dict[str, list[tuple[str, str]]]:
    """Runnable blocks by page: (file name, code)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        blocks = [(f"{name}.py", code) for code, name in RUNNABLE.findall(text)]
        if blocks:
            found[str(page.relative_to(DOCS))] = blocks
    return found


RUNNABLE_PAGES = _runnable()


def test_the_tutorial_and_how_to_have_runnable_examples() -> None:
    names = [name for blocks in RUNNABLE_PAGES.values() for name, _ in blocks]
    assert len(names) == len(set(names)), "two runnable blocks name the same file"
    assert {
        "tutorial/first-provider.md",
        "tutorial/background-jobs.md",
        "tutorial/consent.md",
        "how-to/test-a-provider.md",
    } <= set(RUNNABLE_PAGES)


@pytest.mark.parametrize("page", sorted(RUNNABLE_PAGES))
def test_runnable_examples_run(page: str, auth: FakeGlobusAuth, tmp_path: Path) -> None:
    """Every runnable block is written to its file (all pages' blocks side by
    side, as later pages use earlier pages' modules); this page's modules are
    imported (each builds its apps) and its tests run with pytest."""
    for blocks in RUNNABLE_PAGES.values():
        for name, code in blocks:
            (tmp_path / name).write_text(code)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {
        **os.environ,
        **auth.env(),
        "APTOOLS_STORE": "memory:",
        "APTOOLS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "PYTHONPATH": str(tmp_path),
    }
    mine = [name for name, _ in RUNNABLE_PAGES[page]]
    modules = [n.removesuffix(".py") for n in mine if not n.startswith("test_")]
    tests = [n for n in mine if n.startswith("test_")]
    for module in modules:
        imported = subprocess.run(
            [sys.executable, "-c", f"import {module}; {module}.app; {module}.asgi"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert imported.returncode == 0, f"{page}: {module}.py: {imported.stderr}"
    if tests:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-4000:]
        assert re.search(r"\d+ passed", done.stdout) and "failed" not in done.stdout
