"""The project's own stores keep the shipped store contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aptools import MemoryStore, SQLiteStore, Store
from aptools.testing.store_contract import StoreContract

from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def make_store(self) -> Iterator[Store]:
        store = MemoryStore()
        yield store
        store.close()


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Iterator[Store]:
        store = SQLiteStore(tmp_path / "actions.db")
        yield store
        store.close()


class TestPostgreSQLStore(StoreContract):
    @pytest.fixture
    def make_store(self, pg_url: str) -> Iterator[Store]:
        from aptools.store.postgresql import PostgreSQLStore

        store = PostgreSQLStore(pg_url)
        yield store
        store.close()
