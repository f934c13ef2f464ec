"""SQLite files of older versions are upgraded in place: version 0 (before
provider namespaces) and version 1 (before the job table joined the schema)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from aptools import RequestKey, SQLiteStore, Stored
from aptools.store.sqlite.schema import VERSION

from .test_store import ALICE, BOB, NOW, action, put

# The tables exactly as the version before namespaces made them.
_V0_SCHEMA = """
CREATE TABLE aptools_actions (
    action_id   TEXT PRIMARY KEY,
    creator_id  TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    reserved_at REAL NOT NULL,
    pending     INTEGER NOT NULL DEFAULT 1,
    status      TEXT NOT NULL DEFAULT '',
    expires_at  REAL,
    public      BLOB,
    doc         BLOB,
    UNIQUE (creator_id, request_id)
);
CREATE INDEX aptools_actions_expiry
    ON aptools_actions (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE aptools_principals (
    principal TEXT NOT NULL,
    role      TEXT NOT NULL,
    action_id TEXT NOT NULL,
    PRIMARY KEY (principal, role, action_id)
) WITHOUT ROWID;
CREATE INDEX aptools_principals_action ON aptools_principals (action_id);
CREATE TABLE aptools_introspections (
    key        BLOB PRIMARY KEY,
    expires_at REAL NOT NULL,
    record     BLOB NOT NULL
) WITHOUT ROWID;
"""


def _old_file(path: Path) -> None:
    """A file as the version before namespaces left it: two finished actions
    (one shared with BOB, one expiring) and a claim row of an older one."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_V0_SCHEMA)
    for act, expires_at in (
        (action("old1", monitor_by=[BOB]), None),
        (action("old2", "SUCCEEDED"), NOW + 100),
    ):
        stored = Stored.of(act)
        db.execute(
            "INSERT INTO aptools_actions VALUES (?, ?, ?, 'fp', ?, 0, ?, ?, ?, ?)",
            (
                act.action_id,
                ALICE,
                act.request_id,
                NOW,
                act.status,
                expires_at,
                stored.public,
                stored.doc,
            ),
        )
    db.execute(
        "INSERT INTO aptools_principals VALUES (?, 'monitor_by', 'old1')", (BOB,)
    )
    db.execute(
        "INSERT INTO aptools_actions (action_id, creator_id, request_id,"
        " fingerprint, reserved_at) VALUES ('claimed', ?, 'req-claimed', 'fp', ?)",
        (ALICE, NOW),
    )
    db.close()


def test_sqlite_reads_files_of_the_version_before_namespaces(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_file(path)
    root = SQLiteStore(path)
    alpha, beta = root.for_provider("alpha"), root.for_provider("beta")
    # Actions from before namespaces stay readable by the provider they
    # belong to; which that is, the file never said, so every provider on
    # the file reads them, as before.
    for view in (alpha, beta):
        got = view.get("old1", NOW)
        assert got is not None and got.action().monitor_by == [BOB]
        assert [
            a.action_id for a in view.list({"monitor_by": {BOB}}, {"ACTIVE"}, NOW)
        ] == ["old1"]
        again = view.reserve(RequestKey(ALICE, "req-old1", "fp"), "x", NOW, 60)
        assert again.outcome == "existing" and again.stored is not None
    # They keep changing and expiring as before.
    done = Stored.of(action("old1", "SUCCEEDED"))
    assert alpha.update("old1", done, NOW + 10, NOW) == done
    assert beta.purge(NOW + 11) == 1
    assert alpha.get("old1", NOW) is None
    assert alpha.get("old2", NOW) is not None
    # A claim row an older version left is free for a new run.
    claimed = RequestKey(ALICE, "req-claimed", "fp")
    assert alpha.reserve(claimed, "fresh", NOW, 60).outcome == "new"
    # New actions are the provider's own; a request id may recur elsewhere.
    put(alpha, action("new", request_id="again"))
    put(beta, action("new-beta", request_id="again"))
    assert beta.get("new", NOW) is None and alpha.get("new-beta", NOW) is None
    root.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (VERSION,)
    reopened = SQLiteStore(path).for_provider("alpha")
    assert reopened.get("new", NOW) is not None
    assert reopened.get("old2", NOW) is not None
    reopened.close()


def _open_old(path: str, together: Any, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    together.wait(60)
    try:
        store = SQLiteStore(path).for_provider("p")
        found = store.get("old1", NOW)
        queue.put("ok" if found is not None else "old1 not found")
        store.close()
    except Exception as exc:  # reported to the test
        queue.put(repr(exc))


def test_sqlite_processes_may_upgrade_an_old_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_file(path)
    ctx = multiprocessing.get_context("spawn")
    together = ctx.Barrier(3)
    queue = ctx.Queue()
    openers = [
        ctx.Process(target=_open_old, args=(str(path), together, queue))
        for _ in range(3)
    ]
    for p in openers:
        p.start()
    try:
        said = [queue.get(timeout=120) for _ in openers]
    finally:
        for p in openers:
            p.join(timeout=60)
    assert said == ["ok"] * 3
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM aptools_actions").fetchone() == (3,)


def test_sqlite_refuses_a_file_of_a_newer_version(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ValueError, match="newer") as refused:
        SQLiteStore(path)
    assert str(path) in str(refused.value)


# The job table exactly as version 1's job queue made it when first opened.
_V1_JOBS = """
CREATE TABLE aptools_jobs (
    namespace        TEXT NOT NULL,
    action_id        TEXT NOT NULL,
    enqueued_at      REAL NOT NULL,
    deadline         REAL,
    owner            TEXT,
    lease_until      REAL NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    checkpoint       BLOB,
    caller           BLOB NOT NULL,
    tokens           BLOB,
    PRIMARY KEY (namespace, action_id)
) WITHOUT ROWID;
"""


def _v1_file(path: Path, jobs: bool) -> None:
    """A file as version 1 left it: an ACTIVE action of provider "p" and,
    when its provider had a job, the job table with that action's job."""
    made = SQLiteStore(path)
    put(made.for_provider("p"), action("waiting"))
    made.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE aptools_jobs")
    if jobs:
        db.executescript(_V1_JOBS)
        db.execute(
            "INSERT INTO aptools_jobs (namespace, action_id, enqueued_at, caller)"
            " VALUES ('p', 'waiting', ?, '{}')",
            (NOW,),
        )
    db.execute("PRAGMA user_version = 1")
    db.close()


@pytest.mark.parametrize("jobs", [True, False], ids=["with-jobs", "without-jobs"])
def test_sqlite_upgrades_a_file_of_version_1(tmp_path: Path, jobs: bool) -> None:
    path = tmp_path / "v1.db"
    _v1_file(path, jobs)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
    store = SQLiteStore(path).for_provider("p")
    queue = store.jobs()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (VERSION,)
    claimed = [c.action_id for c in queue.claim("w", 30, 9)]
    # A queued job survives the upgrade; a file without jobs gains the table.
    assert claimed == (["waiting"] if jobs else [])
    queue.enqueue("late", None, {"identity_id": "x"})
    put(store, action("late"))
    [late] = queue.claim("w", 30, 9)
    assert late.action_id == "late"
    # Rows of older versions count their claims from here on: fenced too.
    queue.checkpoint(late.fence, b"1")
    store.close()
