"""Opening stores by URL: the registry, entry points, and URLs kept secret."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from aptools import MemoryStore, SQLiteStore, open_store
from aptools.store import redact

SECRET = "s3cret-Pa55"


def test_built_in_schemes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_store("memory:"), MemoryStore)
    assert isinstance(open_store("memory://"), MemoryStore)
    absolute = open_store(f"sqlite:///{tmp_path}/a.db")
    assert isinstance(absolute, SQLiteStore) and (tmp_path / "a.db").exists()
    absolute.close()
    monkeypatch.chdir(tmp_path)
    relative = open_store("SQLite:///b.db")
    assert isinstance(relative, SQLiteStore) and (tmp_path / "b.db").exists()
    relative.close()


def test_the_url_comes_from_the_environment_else_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APTOOLS_STORE", "memory:")
    assert isinstance(open_store(), MemoryStore)
    monkeypatch.delenv("APTOOLS_STORE")
    default = open_store()
    assert isinstance(default, SQLiteStore)
    assert (tmp_path / "aptools-actions.db").exists()
    default.close()


@pytest.mark.parametrize(
    "url, says",
    [
        ("file.db", "starts with a scheme"),
        ("/var/lib/actions.db", "starts with a scheme"),
        ("redis://cache/0", "no store for 'redis:'"),
        ("sqlite:///", "SQLite store URL is"),
        ("sqlite://host/file.db", "SQLite store URL is"),
        ("sqlite:file.db", "SQLite store URL is"),
        ("memory:later", "memory store URL is 'memory:'"),
    ],
)
def test_bad_urls_are_refused_clearly(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="store URL") as refused:
        open_store(url)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            f"scheme://user:{SECRET}@host/db",
            "scheme://user:***@host/db",
        ),
        (
            f"postgresql://app:{SECRET}@db.example.org:5432/actions?sslmode=require",
            "postgresql://app:***@db.example.org:5432/actions?sslmode=require",
        ),
        (f"postgres://app:p@{SECRET}@host/db", "postgres://app:***@host/db"),
        (
            f"postgresql://host/db?user=app&password={SECRET}&sslmode=require",
            "postgresql://host/db?user=app&password=***&sslmode=require",
        ),
        (f"x://:{SECRET}@host", "x://:***@host"),
        ("postgresql://app@host/db", "postgresql://app@host/db"),
        ("sqlite:////var/lib/a@b.db", "sqlite:////var/lib/a@b.db"),
        ("memory:", "memory:"),
        (f"user:{SECRET}@host/db", "user:***@host/db"),
    ],
)
def test_redact_hides_passwords_only(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert SECRET not in redact(url)


@pytest.mark.parametrize(
    "url",
    [
        f"scheme://user:{SECRET}@host/db",
        f"unknown://app:{SECRET}@host/db?password={SECRET}",
        f"nothing-like-a-url user:{SECRET}@host",
    ],
)
def test_refusals_never_show_the_password(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        open_store(url)
    assert SECRET not in str(refused.value)
    assert refused.value.__cause__ is None


def _distribution(where: Path, scheme: str, factory: str) -> None:
    """An installed distribution offering ``scheme`` through the entry point
    group, its factory in the module ``contract_stores``."""
    (where / "contract_stores.py").write_text(
        textwrap.dedent(
            """
            from aptools import MemoryStore

            class ExtraStore(MemoryStore):
                pass

            def open_extra(url):
                store = ExtraStore()
                store.url = url
                return store

            def refuse(url):
                raise ValueError(f"cannot reach {url}")
            """
        )
    )
    info = where / "contract_stores-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: contract-stores\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[aptools.stores]\n{scheme} = contract_stores:{factory}\n"
    )


def test_other_packages_add_schemes_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _distribution(tmp_path, "extra", "open_extra")
    monkeypatch.syspath_prepend(str(tmp_path))
    made = open_store("extra://somewhere/0")
    assert type(made).__name__ == "ExtraStore"
    assert made.url == "extra://somewhere/0"  # type: ignore[attr-defined]
    sys.modules.pop("contract_stores", None)


def test_an_entry_point_cannot_take_a_built_in_scheme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _distribution(tmp_path, "memory", "open_extra")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert type(open_store("memory:")) is MemoryStore


def test_a_factorys_refusal_is_shown_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _distribution(tmp_path, "picky", "refuse")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="cannot reach") as refused:
        open_store(f"picky://app:{SECRET}@host/db")
    assert SECRET not in str(refused.value)
    sys.modules.pop("contract_stores", None)
