"""Request keys held while a run handler runs: one rule on every store. A live
holder keeps its key however long its handler runs (renewed every third of
``run_lease``); a dead holder's key is free ``run_lease`` seconds after its
last renewal at most (at once on SQLite, whose kernel lock goes with the
process); a run of the same request waits ``pending_wait`` for it, then 409."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aptools import (
    ActionRequest,
    Caller,
    MemoryStore,
    Provider,
    ProviderConfigError,
    RequestKey,
    SQLiteStore,
    Store,
)
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import MakeClient
from .pg import pg_url_fixture, schema_fixture  # noqa: F401 - fixtures

NOW = 1_800_000_000.0
KEY = RequestKey("urn:globus:auth:identity:a", "r", "fp")
GOOD = {"input_string": "hello"}


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


def test_a_renewed_key_is_held_and_an_unrenewed_one_handed_on(store: Store) -> None:
    assert store.reserve(KEY, "a1", NOW, 10).outcome == "new"
    store.renew(["a1", "unknown"], NOW + 8)
    # Held ten seconds from the renewal, not from the reservation...
    assert store.reserve(KEY, "a2", NOW + 15, 10).outcome == "pending"
    # ...and handed on once they passed without another.
    assert store.reserve(KEY, "a3", NOW + 18.5, 10).outcome == "new"
    store.renew(["a1"], NOW + 19)  # the old holder's renewal holds nothing now
    assert store.reserve(KEY, "a4", NOW + 28.6, 10).outcome == "new"


def test_run_lease_and_pending_wait_are_checked(auth: FakeGlobusAuth) -> None:
    common: dict[str, Any] = {
        "title": "T",
        "scope": auth.scope,
        "admin_contact": "a@example.org",
        "input_schema": {"type": "object"},
    }
    with pytest.raises(ProviderConfigError, match="run_lease"):
        Provider(**common, run_lease=0)
    with pytest.raises(ProviderConfigError, match="pending_wait"):
        Provider(**common, pending_wait=-1)


def _twice(
    client: Any, alice: FakeIdentity, flavour: str, started: list[float]
) -> list[Any]:
    """The same run request twice: the second while the first's handler runs,
    past a run lease (1 s) after it began."""
    doc = {"request_id": "long", "body": GOOD}
    results: list[Any] = []
    if flavour == "wsgi":

        def call() -> None:
            results.append(client.call("POST", "/run", alice, json=doc))

        first = threading.Thread(target=call)
        first.start()
        while not started:
            time.sleep(0.01)
        time.sleep(1.5)  # a stale hold would be handed on by now
        call()
        first.join(30)
        return results
    import falcon.testing

    async def main() -> None:
        headers = {"Authorization": f"Bearer {alice.token}"}
        async with falcon.testing.ASGIConductor(client.app) as conductor:

            async def later() -> Any:
                while not started:
                    await asyncio.sleep(0.01)
                await asyncio.sleep(1.5)  # a stale hold would be handed on
                return await conductor.simulate_post(
                    "/test/run", json=doc, headers=headers
                )

            results.extend(
                await asyncio.gather(
                    conductor.simulate_post("/test/run", json=doc, headers=headers),
                    later(),
                )
            )

    asyncio.run(main())
    return results


def test_a_handler_longer_than_the_run_lease_keeps_its_key(
    make: MakeClient, alice: FakeIdentity, flavour: str, store: Store
) -> None:
    started: list[float] = []

    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]:
        started.append(time.monotonic())
        time.sleep(3.5)  # three and a half run leases
        return {"n": len(started)}

    _, client = make(
        run=run, store=store, synchronous=True, run_lease=1.0, pending_wait=10.0
    )
    results = _twice(client, alice, flavour, started)
    assert len(started) == 1  # the handler ran once
    assert sorted(r.status_code for r in results) == [200, 202]
    assert len({r.json["action_id"] for r in results}) == 1
