"""The readiness route: 200 while the store serves, 503 JSON while it cannot
be reached or its schema is not the expected one, ready again by itself; on
both faces and every store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import falcon.testing
import pytest

from aptools import MemoryStore, SQLiteStore
from aptools.store.sqlite.schema import VERSION
from aptools.testing import FakeIdentity

from .conftest import Client, MakeClient
from .pg import (  # noqa: F401 - the fixtures pg_url and schema
    URL,
    Relay,
    eventually,
    execute,
    pg_url_fixture,
    require_server,
    schema_fixture,
    through,
    with_params,
)


def _ready(client: Client) -> falcon.testing.Result:
    return client.call("GET", "/ready")


def _until(client: Client, status: int) -> falcon.testing.Result:
    """The readiness answer once it is ``status`` (the verdict is kept for a
    couple of seconds, so a change shows after at most that)."""
    return eventually(lambda: _ready(client), lambda r: r.status_code == status)


def _is_not_ready(result: falcon.testing.Result, says: str) -> None:
    assert result.status_code == 503, result.text
    assert result.headers["content-type"] == "application/json"
    assert result.json["ready"] is False
    assert result.json["code"] == "StoreUnavailable"
    assert says in result.json["description"]


def test_ready_needs_no_token_and_is_not_cached(make: MakeClient) -> None:
    _, client = make(store=MemoryStore(), visible_to=["all_authenticated_users"])
    got = _ready(client)
    assert got.status_code == 200
    assert got.json == {"ready": True}
    assert got.headers["cache-control"] == "no-store"
    assert client.call("HEAD", "/ready").status_code == 200
    # The liveness route still asks for a token where the provider is not public.
    assert client.call("GET", "/").status_code == 401


def test_ready_is_in_the_openapi_document_without_security(
    make: MakeClient, alice: FakeIdentity
) -> None:
    _, client = make()
    document = client.call("GET", "/openapi.json", alice).json
    operation = document["paths"]["/test/ready"]["get"]
    assert operation["security"] == [{}]
    assert set(operation["responses"]) >= {"200", "503"}


def test_sqlite_schema_mismatch_is_not_ready_then_ready_again(
    make: MakeClient, tmp_path: Path
) -> None:
    path = tmp_path / "actions.db"
    _, client = make(store=SQLiteStore(path))
    assert _ready(client).status_code == 200
    with sqlite3.connect(path) as other:
        other.execute("PRAGMA user_version = 7")
    _is_not_ready(_until(client, 503), "schema version 7")
    with sqlite3.connect(path) as other:
        other.execute(f"PRAGMA user_version = {VERSION}")
    assert _until(client, 200).json == {"ready": True}


def test_sqlite_file_gone_is_not_ready(make: MakeClient, tmp_path: Path) -> None:
    path = tmp_path / "actions.db"
    _, client = make(store=SQLiteStore(path))
    assert _ready(client).status_code == 200
    path.rename(tmp_path / "moved.db")
    _is_not_ready(_until(client, 503), "no longer at its path")
    (tmp_path / "moved.db").rename(path)
    assert _until(client, 200).status_code == 200


def test_a_closed_store_is_not_ready(on_postgresql: Any, pg_url: str) -> None:
    from aptools.store.postgresql import PostgreSQLStore

    provider, client = on_postgresql(PostgreSQLStore(pg_url))
    assert _ready(client).status_code == 200
    provider.store.close()
    _is_not_ready(_until(client, 503), "closed")


# -- PostgreSQL --

Closing = Callable[[MakeClient, Any], tuple[Any, Client]]


@pytest.fixture
def on_postgresql(make: MakeClient) -> Iterator[Closing]:
    """``make`` on a PostgreSQL store, closed (its view and itself) after."""
    opened: list[Any] = []

    def build(store: Any, **kw: Any) -> tuple[Any, Client]:
        opened.append(store)
        provider, client = make(store=store, **kw)
        opened.append(provider.store)
        return provider, client

    yield build  # type: ignore[misc]
    for store in reversed(opened):
        store.close()


@pytest.fixture
def relay() -> Iterator[Relay]:
    made = Relay()
    yield made
    made.cut()


def test_postgresql_port_closed_is_not_ready_then_ready_again(
    on_postgresql: Any, relay: Relay, schema: str
) -> None:
    from aptools.store.postgresql import PostgreSQLStore

    url = through(relay, schema, pool_timeout=1, connect_timeout=1)
    _, client = on_postgresql(PostgreSQLStore(url))
    assert _ready(client).status_code == 200
    relay.cut()  # nothing listens on the store's port any more
    _is_not_ready(_until(client, 503), "could not be reached")
    relay.mend()
    assert _until(client, 200).json == {"ready": True}


def test_postgresql_refusing_connections_is_not_ready(
    on_postgresql: Any, schema: str
) -> None:
    """A real outage: the server itself refuses the store's role, and ends
    its sessions."""
    from aptools.store.postgresql import PostgreSQLStore

    role = schema  # a role of the test's own
    PostgreSQLStore(with_params(URL, schema=schema)).close()
    execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
        execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
        url = URL.replace("postgres@", f"{role}@", 1)
        url = with_params(url, schema=schema, pool_timeout=1, connect_timeout=1)
        provider, client = on_postgresql(PostgreSQLStore(url))
        assert _ready(client).status_code == 200
        execute(f'ALTER ROLE "{role}" NOLOGIN')
        execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            role,
        )
        _is_not_ready(_until(client, 503), "could not be reached")
        execute(f'ALTER ROLE "{role}" LOGIN')
        assert _until(client, 200).status_code == 200
        provider.store.close()
    finally:
        execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
            role,
        )
        execute(f'DROP OWNED BY "{role}"')
        execute(f'DROP ROLE IF EXISTS "{role}"')


def test_postgresql_schema_mismatch_is_not_ready(
    on_postgresql: Any, pg_url: str, schema: str
) -> None:
    from aptools.store.postgresql import VERSION, PostgreSQLStore

    provider, client = on_postgresql(PostgreSQLStore(pg_url))
    assert _ready(client).status_code == 200
    # A newer aptools migrated the schema on another host.
    execute(f'INSERT INTO "{schema}".aptools_schema (version) VALUES ({VERSION + 1})')
    _is_not_ready(_until(client, 503), f"version {VERSION + 1}")
    execute(f'DELETE FROM "{schema}".aptools_schema WHERE version > {VERSION}')
    assert _until(client, 200).status_code == 200
    # The tables are gone (a schema dropped, a database restored empty).
    execute(f'DROP TABLE "{schema}".aptools_schema')
    _is_not_ready(_until(client, 503), "version 0")
    provider.store.close()


class _AsyncGet(MemoryStore):
    """A store of ``async def`` methods that keeps the default check."""

    async def get(self, action_id: str, now: float) -> Any:  # type: ignore[override]
        return MemoryStore.get(self, action_id, now)


def test_a_store_of_async_methods_is_asked_too(make: MakeClient) -> None:
    _, client = make(store=_AsyncGet())
    assert _ready(client).json == {"ready": True}
