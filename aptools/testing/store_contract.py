"""The store contract as pytest tests: prove that a :class:`~aptools.Store` keeps it.

Subclass :class:`StoreContract` in a test module and give it a
``make_store`` fixture that yields a new, empty store and closes it after::

    import pytest
    from aptools.testing.store_contract import StoreContract
    from my_package import RedisStore

    class TestRedisStore(StoreContract):
        @pytest.fixture
        def make_store(self):
            store = RedisStore("redis://127.0.0.1/15")
            yield store
            store.close()

Every test then runs on that store: each method's documented semantics
(:mod:`aptools.store.base`), reserve atomic under threads, lease hand-over,
terminal actions that never change, expiry and purge, listing by principal,
role and status, two provider namespaces on one store, and what a store
may offer: shared introspections, and callers' run buckets
(:meth:`~aptools.Store.count_run`, skipped on a store without it). The
tests run on views made by :meth:`~aptools.Store.for_provider`, as a
provider uses the store. Times are fixed POSIX times (the run buckets', the
store's clock), so no test waits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from aptools.models import Action, isoformat
from aptools.store import RequestKey, Store, Stored

__all__ = ["StoreContract"]

NOW = 1_900_000_000.0
LEASE = 60.0
ALICE = "urn:globus:auth:identity:00000000-0000-4000-8000-00000000000a"
BOB = "urn:globus:auth:identity:00000000-0000-4000-8000-00000000000b"
GROUP = "urn:globus:groups:id:00000000-0000-4000-8000-0000000000aa"
SCOPE = "https://auth.globus.org/scopes/00000000-0000-4000-8000-000000000001/all"
ONE = f"{SCOPE} /one"
TWO = f"{SCOPE} /two"


def action(action_id: str, status: str = "ACTIVE", **fields: Any) -> Action:
    """An action of ALICE's (``request_id`` ``req-<action_id>``) unless told."""
    made: dict[str, Any] = {
        "action_id": action_id,
        "status": status,
        "creator_id": ALICE,
        "request_id": "req-" + action_id,
        "start_time": isoformat(NOW),
        "body": {"n": 1},
    }
    made.update(fields)
    return Action(**made)


def key(act: Action, fingerprint: str = "fp") -> RequestKey:
    return RequestKey(act.creator_id, act.request_id, fingerprint)


def put(store: Store, act: Action, expires_at: float | None = None) -> Stored:
    """Reserve and create ``act``, as a run does; the stored form."""
    assert store.reserve(key(act), act.action_id, NOW, LEASE).outcome == "new"
    stored = Stored.of(act)
    store.create(stored, act, expires_at)
    return stored


class StoreContract:
    """Tests any store must pass; override the ``make_store`` fixture."""

    @pytest.fixture
    def make_store(self) -> Iterator[Store]:
        """Yield a new, empty store, and close it afterwards (override)."""
        raise NotImplementedError("a StoreContract subclass overrides make_store")

    @pytest.fixture
    def store(self, make_store: Store) -> Store:
        return make_store.for_provider(ONE)

    # -- readiness -------------------------------------------------------------

    def test_an_open_store_is_ready(self, store: Store) -> None:
        # Store.ready() returns while the store can serve; it raises
        # StoreUnavailable, with a reason, when it cannot.
        store.ready()
        store.reserve(key(action("r1"), "fp"), "r1", NOW, LEASE)
        store.ready()

    # -- reserve, create, abandon ----------------------------------------------

    def test_reserve_outcomes(self, store: Store) -> None:
        first = action("a1")
        assert store.reserve(key(first, "fp1"), "a1", NOW, LEASE).outcome == "new"
        again = store.reserve(key(first, "fp1"), "a2", NOW, LEASE)
        assert again.outcome == "pending" and again.stored is None
        other = store.reserve(key(first, "fp2"), "a2", NOW, LEASE)
        assert other.outcome == "conflict" and other.stored is None
        stored = Stored.of(first)
        store.create(stored, first, None)
        found = store.reserve(key(first, "fp1"), "a3", NOW, LEASE)
        assert found.outcome == "existing" and found.stored is not None
        assert found.stored.action_id == "a1" and found.stored.public == stored.public
        assert store.reserve(key(first, "fp2"), "a3", NOW, LEASE).outcome == "conflict"
        assert store.get("a3", NOW) is None

    def test_request_keys_belong_to_their_creator(self, store: Store) -> None:
        put(store, action("a1", request_id="r"))
        theirs = RequestKey(BOB, "r", "another document")
        assert store.reserve(theirs, "b1", NOW, LEASE).outcome == "new"

    def test_reserved_action_is_invisible_until_created(self, store: Store) -> None:
        pending = action("a1")
        assert store.reserve(key(pending), "a1", NOW, LEASE).outcome == "new"
        assert store.get("a1", NOW) is None
        assert store.update("a1", Stored.of(pending), None, NOW) is None
        assert store.list({"creator_id": {ALICE}}, {"ACTIVE"}, NOW) == []
        store.create(Stored.of(pending), pending, None)
        got = store.get("a1", NOW)
        assert got is not None and got == Stored.of(pending)

    def test_stale_hold_is_handed_over(self, store: Store) -> None:
        stuck, fresh = action("a1", request_id="r"), action("a2", request_id="r")
        assert store.reserve(key(stuck), "a1", NOW, LEASE).outcome == "new"
        late = NOW + LEASE - 1
        assert store.reserve(key(fresh), "a2", late, LEASE).outcome == "pending"
        assert store.reserve(key(fresh), "a2", NOW + LEASE + 1, LEASE).outcome == "new"
        store.create(Stored.of(stuck), stuck, None)  # too late: stores nothing
        assert store.get("a1", NOW) is None
        store.create(Stored.of(fresh), fresh, None)
        found = store.reserve(key(stuck), "a3", NOW, LEASE)
        assert found.stored is not None and found.stored.action_id == "a2"

    def test_a_renewed_hold_lasts_a_lease_from_its_renewal(self, store: Store) -> None:
        # Store.renew: a live holder keeps its key however long its handler
        # runs; a dead one's goes a lease after its last renewal.
        held, other = action("a1", request_id="r"), action("a2", request_id="r")
        assert store.reserve(key(held), "a1", NOW, LEASE).outcome == "new"
        store.renew(["a1"], NOW + LEASE - 1)
        late = NOW + LEASE + 1
        assert store.reserve(key(other), "a2", late, LEASE).outcome == "pending"
        again = NOW + 2 * LEASE
        assert store.reserve(key(other), "a2", again, LEASE).outcome == "new"

    def test_abandon_frees_the_key(self, store: Store) -> None:
        dropped = action("a1", request_id="r")
        assert store.reserve(key(dropped), "a1", NOW, LEASE).outcome == "new"
        store.abandon("a1")
        store.create(Stored.of(dropped), dropped, None)  # abandoned: nothing
        assert store.get("a1", NOW) is None
        assert store.reserve(key(dropped), "a2", NOW, LEASE).outcome == "new"
        store.abandon("unknown")

    def test_abandon_leaves_a_finished_action(self, store: Store) -> None:
        put(store, action("a1"))
        store.abandon("a1")
        assert store.get("a1", NOW) is not None

    def test_reserve_is_atomic_under_threads(self, store: Store) -> None:
        threads = 8
        start = threading.Barrier(threads)
        outcomes: list[str] = []

        def contend(n: int) -> None:
            start.wait(30)
            same = RequestKey(ALICE, "together", "fp")
            outcomes.append(store.reserve(same, f"t{n}", NOW, LEASE).outcome)

        workers = [threading.Thread(target=contend, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert sorted(outcomes) == ["new"] + ["pending"] * (threads - 1)

    def test_runs_in_many_threads_are_all_kept(self, store: Store) -> None:
        threads, each = 6, 15
        start = threading.Barrier(threads)

        def runs(n: int) -> None:
            start.wait(30)
            for i in range(each):
                put(store, action(f"t{n}-{i}"))

        workers = [threading.Thread(target=runs, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        found = store.list({"creator_id": {ALICE}}, {"ACTIVE"}, NOW)
        assert len({a.action_id for a in found}) == threads * each

    # -- get, update, delete ---------------------------------------------------

    def test_get(self, store: Store) -> None:
        assert store.get("unknown", NOW) is None
        stored = put(store, action("a1", label="first", details={"k": [1, 2]}))
        got = store.get("a1", NOW)
        assert got is not None
        assert (got.action_id, got.status, got.creator_id) == ("a1", "ACTIVE", ALICE)
        assert got.public == stored.public and got.doc == stored.doc
        assert got.action().label == "first"

    def test_copies_are_private(self, store: Store) -> None:
        put(store, action("a1", details={"n": 1}))
        got = store.get("a1", NOW)
        assert got is not None
        got.action().details["n"] = 2
        again = store.get("a1", NOW)
        assert again is not None and again.action().details == {"n": 1}

    def test_update_saves_a_new_state(self, store: Store) -> None:
        put(store, action("a1"))
        later = Stored.of(action("a1", "INACTIVE", display_status="waiting"))
        saved = store.update("a1", later, None, NOW)
        assert saved is not None and saved.status == "INACTIVE"
        got = store.get("a1", NOW)
        assert got is not None and got.public == later.public
        assert store.update("unknown", later, None, NOW) is None
        # A retry of the request that made it finds it as it is now.
        found = store.reserve(key(action("a1")), "a2", NOW, LEASE)
        assert found.stored is not None and found.stored.public == later.public

    def test_terminal_actions_never_change(self, store: Store) -> None:
        put(store, action("a1"))
        done = Stored.of(action("a1", "SUCCEEDED", details={"r": 1}))
        assert store.update("a1", done, NOW + 100, NOW) == done
        for status in ("ACTIVE", "FAILED", "SUCCEEDED"):
            back = store.update("a1", Stored.of(action("a1", status)), None, NOW)
            assert back is not None and back.public == done.public
        got = store.get("a1", NOW)
        assert got is not None and got.action().details == {"r": 1}

    def test_delete_removes_action_and_key(self, store: Store) -> None:
        gone = action("a1", "FAILED")
        put(store, gone)
        store.delete("a1")
        assert store.get("a1", NOW) is None
        assert store.list({"creator_id": {ALICE}}, {"FAILED"}, NOW) == []
        assert store.reserve(key(gone, "other"), "a2", NOW, LEASE).outcome == "new"
        store.delete("unknown")

    # -- expiry ----------------------------------------------------------------

    def test_expired_actions_are_absent(self, store: Store) -> None:
        done = action("a1", "SUCCEEDED")
        put(store, done, expires_at=NOW + 10)
        assert store.get("a1", NOW + 9) is not None
        assert store.get("a1", NOW + 10) is None
        assert store.list({"creator_id": {ALICE}}, {"SUCCEEDED"}, NOW + 10) == []
        assert store.update("a1", Stored.of(done), None, NOW + 10) is None
        retry = store.reserve(key(done), "a2", NOW + 10, LEASE)
        assert retry.outcome == "new"

    def test_purge_deletes_only_expired_actions(self, store: Store) -> None:
        put(store, action("a1", "SUCCEEDED"), expires_at=NOW + 10)
        put(store, action("a2", "FAILED"), expires_at=NOW + 20)
        put(store, action("a3"))
        assert store.purge(NOW + 5) == 0
        assert store.purge(NOW + 11) == 1
        assert store.get("a2", NOW) is not None and store.get("a3", NOW) is not None
        assert store.get("a1", NOW) is None
        assert store.purge(NOW + 11) == 0

    # -- list ------------------------------------------------------------------

    def test_list_by_principal_role_and_status(self, store: Store) -> None:
        put(store, action("a1"))
        put(store, action("a2", "SUCCEEDED"))
        put(store, action("b1", creator_id=BOB, monitor_by=[ALICE]))
        put(store, action("b2", creator_id=BOB, manage_by=[GROUP]))
        put(store, action("b3", creator_id=BOB))

        def ids(roles: dict[str, set[str]], statuses: set[str]) -> set[str]:
            return {a.action_id for a in store.list(roles, statuses, NOW)}

        assert ids({"creator_id": {ALICE}}, {"ACTIVE"}) == {"a1"}
        assert ids({"creator_id": {ALICE}}, {"ACTIVE", "SUCCEEDED"}) == {"a1", "a2"}
        assert ids({"monitor_by": {ALICE}}, {"ACTIVE"}) == {"b1"}
        assert ids({"manage_by": {ALICE, GROUP}}, {"ACTIVE"}) == {"b2"}
        assert ids({"monitor_by": {GROUP}}, {"ACTIVE"}) == set()
        both = ids({"creator_id": {ALICE}, "monitor_by": {ALICE}}, {"ACTIVE"})
        assert both == {"a1", "b1"}
        assert ids({"creator_id": {BOB}}, {"ACTIVE"}) == {"b1", "b2", "b3"}
        assert ids({"creator_id": {BOB}}, set()) == set()
        assert ids({}, {"ACTIVE"}) == set()

    def test_list_answers_whole_actions(self, store: Store) -> None:
        kept = action("a1", label="l", monitor_by=[BOB], details={"d": 1})
        put(store, kept)
        [found] = store.list({"monitor_by": {BOB}}, {"ACTIVE"}, NOW)
        assert found.to_private() == kept.to_private()
        assert found.to_public() == kept.to_public()

    # -- provider namespaces ---------------------------------------------------

    def test_namespaces_keep_actions_apart(self, make_store: Store) -> None:
        one, two = make_store.for_provider(ONE), make_store.for_provider(TWO)
        theirs = action("a1", "SUCCEEDED", monitor_by=[BOB])
        put(one, theirs, expires_at=NOW + 10)
        assert two.get("a1", NOW) is None
        assert two.update("a1", Stored.of(action("a1")), None, NOW) is None
        assert (
            two.list({"creator_id": {ALICE}, "monitor_by": {BOB}}, {"SUCCEEDED"}, NOW)
            == []
        )
        two.delete("a1")
        assert two.purge(NOW + 11) == 0
        assert one.get("a1", NOW) is not None

    def test_namespaces_keep_request_keys_apart(self, make_store: Store) -> None:
        one, two = make_store.for_provider(ONE), make_store.for_provider(TWO)
        first = action("a1", request_id="r")
        put(one, first)
        same, other = key(first), key(first, "another document")
        assert two.reserve(same, "b1", NOW, LEASE).outcome == "new"
        assert two.reserve(other, "b2", NOW, LEASE).outcome == "conflict"
        mine = action("b1", request_id="r")
        two.create(Stored.of(mine), mine, None)
        found = two.reserve(same, "b3", NOW, LEASE)
        assert found.stored is not None and found.stored.action_id == "b1"
        found = one.reserve(same, "a3", NOW, LEASE)
        assert found.stored is not None and found.stored.action_id == "a1"

    def test_namespaces_keep_holds_apart(self, make_store: Store) -> None:
        one, two = make_store.for_provider(ONE), make_store.for_provider(TWO)
        held = action("a1", request_id="r")
        assert one.reserve(key(held), "a1", NOW, LEASE).outcome == "new"
        two.abandon("a1")  # not two's to drop
        two.create(Stored.of(held), held, None)  # nor to create
        assert one.get("a1", NOW) is None and two.get("a1", NOW) is None
        assert one.reserve(key(held), "a2", NOW, LEASE).outcome == "pending"

    def test_views_of_one_namespace_share_actions(self, make_store: Store) -> None:
        first, second = make_store.for_provider(ONE), make_store.for_provider(ONE)
        put(first, action("a1"))
        assert second.get("a1", NOW) is not None
        assert second.reserve(key(action("a1")), "a2", NOW, LEASE).outcome == (
            "existing"
        )

    # -- shared introspections -------------------------------------------------

    def test_shared_introspections(self, make_store: Store) -> None:
        one = make_store.for_provider(ONE).introspections()
        if one is None:
            pytest.skip("this store shares no introspections")
        two = make_store.for_provider(TWO).introspections()
        assert two is not None
        token_hash, other_hash = b"\x01" * 32, b"\x02" * 32
        record = {"sub": "someone", "scopes": [SCOPE]}
        with one.hold(token_hash, wait=1.0):
            assert one.get(token_hash, NOW) is None
            one.put(token_hash, NOW + 60, record)
        assert one.get(token_hash, NOW) == (NOW + 60, record)
        assert one.get(token_hash, NOW + 60) is None  # expired
        assert one.get(other_hash, NOW) is None
        assert two.get(token_hash, NOW) is None  # another provider's
        again = make_store.for_provider(ONE).introspections()
        assert again is not None and again.get(token_hash, NOW) == (NOW + 60, record)

    # -- run buckets (max_runs_per_caller) ---------------------------------------

    def test_run_buckets_count_per_caller_and_namespace(
        self, make_store: Store
    ) -> None:
        one = make_store.for_provider(ONE)
        if type(one).count_run is Store.count_run:
            pytest.skip("this store counts no runs")
        assert [one.count_run("alice", 2, 600.0) for _ in range(2)] == [0.0, 0.0]
        wait = one.count_run("alice", 2, 600.0)  # empty: one run per 300 s
        assert 0 < wait <= 300.0 + 5  # from the store's clock
        assert one.count_run("bob", 2, 600.0) == 0.0  # his own bucket
        assert make_store.for_provider(TWO).count_run("alice", 2, 600.0) == 0.0
        # Views of one namespace share the bucket.
        assert make_store.for_provider(ONE).count_run("alice", 2, 600.0) > 0
