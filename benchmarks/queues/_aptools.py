"""aptools' job engine as a contender (shared by the SQLite and PostgreSQL modules).

A provider with an empty ``def`` job, ``max_jobs=at_once``, its default
poll interval, on the contender's own store. A job is accepted as a run
accepts it, in store terms: the request key reserved, the job enqueued, the
action's first state stored, then the runners woken (this process's at
once, others' through :meth:`JobQueue.announce`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

NAMESPACE = "bench"
WHO = {"identity_id": "bench", "identities": []}
CREATOR = "urn:globus:auth:identity:bench"

_stores: dict[str, Any] = {}


def open_store(place: str) -> Any:
    if place not in _stores:
        from aptools import SQLiteStore

        if place.startswith("postgresql://"):
            from aptools.store.postgresql import PostgreSQLStore

            store: Any = PostgreSQLStore(place)
        else:
            store = SQLiteStore(place)
        _stores[place] = store.for_provider(NAMESPACE)
    return _stores[place]


def accept(store: Any, key: str, now: float) -> None:
    from aptools import Action, RequestKey, Stored

    action = Action(
        action_id=key,
        status="ACTIVE",
        creator_id=CREATOR,
        request_id=key,
        start_time="2027-01-15T08:00:00+00:00",
    )
    queue = store.jobs()
    store.reserve(RequestKey(CREATOR, key, "f"), key, now, 60)
    queue.enqueue(key, None, WHO)
    store.create(Stored.of(action), action, None)


def fill(place: str, jobs: int) -> None:
    store = open_store(place)
    now = time.time()
    for k in range(jobs):
        accept(store, f"f{k:08d}", now)


def _provider(place: str, at_once: int, job: Callable[..., Any]) -> Any:
    from aptools import Provider
    from aptools.testing import FakeGlobusAuth

    if "APTOOLS_CLIENT_ID" not in os.environ and not _auth:
        _auth.append(FakeGlobusAuth().__enter__())
        os.environ.update(_auth[0].env())
    made = Provider(
        title="Bench",
        scope=_auth[0].scope if _auth else os.environ["BENCH_SCOPE"],
        admin_contact="a@example.org",
        input_schema={"type": "object"},
        store=open_store(place),
        store_namespace=NAMESPACE,
        max_jobs=at_once,
        access_log=False,
    )
    made.job(job)
    return made


_auth: list[Any] = []


def drain(place: str, jobs: int, at_once: int) -> float:
    done = [0]
    all_done = threading.Event()
    lock = threading.Lock()

    def empty(action: Any, caller: Any, job: Any) -> dict[str, Any]:
        with lock:
            done[0] += 1
            if done[0] == jobs:
                all_done.set()
        return {}

    provider = _provider(place, at_once, empty)
    started = time.perf_counter()
    runner = provider.jobs.runner()
    all_done.wait(600)
    while runner.running:  # the last outcomes stored
        time.sleep(0.0005)
    took = time.perf_counter() - started
    provider.jobs.shutdown()
    return took


_serving: list[Any] = []


def serve(
    place: str, at_once: int, entered: Callable[[str], None]
) -> Callable[[], None]:
    def mark(action: Any, caller: Any, job: Any) -> dict[str, Any]:
        entered(action.action_id)
        return {}

    provider = _provider(place, at_once, mark)
    provider.jobs.runner()
    _serving.append(provider)

    def halt() -> None:
        provider.jobs.shutdown()
        _serving.remove(provider)

    return halt


def submit(place: str, key: str) -> None:
    store = open_store(place)
    accept(store, key, time.time())
    if _serving:
        _serving[0].jobs.wake()  # a run in this process: this runner, and others
    else:
        store.jobs().announce()  # a run in another process: what its wake sends
