"""The PostgreSQL store's test helpers: a store in a fresh schema, actions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aptools import Action, RequestKey, Stored
from aptools.models import isoformat
from aptools.store.postgresql import PostgreSQLStore

NOW = 1_900_000_000.0
ALICE = "urn:globus:auth:identity:00000000-0000-0000-0000-00000000000a"
BOB = "urn:globus:auth:identity:00000000-0000-0000-0000-00000000000b"
GROUP = "urn:globus:groups:id:00000000-0000-0000-0000-0000000000aa"


@pytest.fixture(name="root")
def root_fixture(pg_url: str) -> Iterator[PostgreSQLStore]:
    made = PostgreSQLStore(pg_url)
    yield made
    made.close()


@pytest.fixture(name="store")
def store_fixture(root: PostgreSQLStore) -> Iterator[PostgreSQLStore]:
    view = root.for_provider("scope-a /a")
    yield view
    view.close()


def key(request_id: str, fingerprint: str = "fp", creator: str = ALICE) -> RequestKey:
    return RequestKey(creator, request_id, fingerprint)


def action(action_id: str, status: str = "ACTIVE", **kw: object) -> Action:
    fields: dict[str, object] = {
        "action_id": action_id,
        "status": status,
        "creator_id": ALICE,
        "request_id": "req-" + action_id,
        "start_time": isoformat(NOW),
    }
    fields.update(kw)
    return Action(**fields)  # type: ignore[arg-type]


def put(store: PostgreSQLStore, act: Action, expires_at: float | None = None) -> None:
    got = store.reserve(
        key(act.request_id, creator=act.creator_id), act.action_id, NOW, 60
    )
    assert got.outcome == "new"
    store.create(Stored.of(act), act, expires_at)
