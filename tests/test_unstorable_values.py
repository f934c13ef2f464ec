"""Values an SQL store cannot hold (U+0000 in text) are answered as the
interface says — 404 for an action id, 400 for a request_id — on every store
and both faces, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aptools import MemoryStore, SQLiteStore, Store
from aptools.testing import FakeIdentity

from .conftest import MakeClient
from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    made: Store
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "actions.db")
    else:
        from aptools.store.postgresql import PostgreSQLStore

        made = PostgreSQLStore(request.getfixturevalue("pg_url"))
    yield made
    made.close()


def _active(request: Any, caller: Any) -> dict[str, Any]:
    return {"started": True}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/actions/abc\x00def"),
        ("GET", "/abc\x00def/status"),
        ("POST", "/actions/abc\x00def/cancel"),
        ("DELETE", "/actions/abc\x00def"),
        ("POST", "/abc\x00def/release"),
    ],
)
def test_an_action_id_with_nul_is_unknown(
    make: MakeClient, store: Store, alice: FakeIdentity, method: str, path: str
) -> None:
    _, client = make(store=store)
    answer = client.call(method, path, alice)
    assert answer.status_code == 404
    assert answer.json["code"] == "NotFound"


def test_a_request_id_with_nul_is_refused(
    make: MakeClient, store: Store, alice: FakeIdentity
) -> None:
    _, client = make(store=store)
    answer = client.run(alice, {"input_string": "x"}, request_id="a\x00b")
    assert answer.status_code == 400
    assert "request_id" in answer.json["description"]
    # Anything else in the document is JSON the store keeps escaped.
    kept = client.run(alice, {"input_string": "a\x00b"}, request_id="ok")
    assert kept.status_code == 202
    assert kept.json["details"] == {"you_said": "a\x00b"}
