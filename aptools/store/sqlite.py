"""The default store: one SQLite file in WAL mode.

It survives restarts and is shared safely by several worker processes on one
host. A new action costs one write: while its handler runs, the request key
is held not in the database but by a lock on one byte of a file beside it
(``<db>-claims``), chosen by the key. The kernel drops such a lock when its
process dies, so a crashed run frees its key at once, with no lease to wait
out. Every read-decide-write runs in an ``IMMEDIATE`` transaction.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson

from aptools.models import Action

if TYPE_CHECKING:
    from aptools.jobs.sqlite import SQLiteJobQueue
from aptools.store.base import CONFLICT, NEW, PENDING, ROLES, Reservation, Store, Stored
from aptools.vocabulary import TERMINAL

__all__ = ["SQLiteStore"]

log = logging.getLogger("aptools.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS aptools_actions (
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
CREATE INDEX IF NOT EXISTS aptools_actions_expiry
    ON aptools_actions (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS aptools_principals (
    principal TEXT NOT NULL,
    role      TEXT NOT NULL,
    action_id TEXT NOT NULL,
    PRIMARY KEY (principal, role, action_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aptools_principals_action
    ON aptools_principals (action_id);
CREATE TABLE IF NOT EXISTS aptools_introspections (
    key        BLOB PRIMARY KEY,
    expires_at REAL NOT NULL,
    record     BLOB NOT NULL
) WITHOUT ROWID;
"""
_TERMINAL = tuple(sorted(TERMINAL))
_LIVE = "pending = 0 AND (expires_at IS NULL OR expires_at > ?)"
# Only constants are formatted into these statements.
_GET = (
    "SELECT action_id, status, creator_id, public, doc FROM aptools_actions"  # noqa: S608
    f" WHERE action_id = ? AND {_LIVE}"
)
_UPDATE = (
    "UPDATE aptools_actions SET status = ?, expires_at = ?, public = ?, doc = ?"  # noqa: S608
    f" WHERE action_id = ? AND status NOT IN (?, ?) AND {_LIVE}"
)


# How many forks this process descends from. PERF: comparing it is cheaper
# than asking the OS for the process id on every call.
_forks = [0]


def _forked() -> None:
    _forks[0] += 1


os.register_at_fork(after_in_child=_forked)


# What a lock attempt on a byte another process holds fails with.
_HELD = frozenset({errno.EACCES, errno.EAGAIN})

T = TypeVar("T")


def _patiently(
    step: Callable[[], T], busy: Callable[[Exception], bool], wait: float
) -> T:
    """``step()``, tried again (pausing longer each time) while it fails in a
    way ``busy`` says will pass, for up to ``wait`` seconds."""
    give_up = time.monotonic() + wait
    pause = 0.001
    while True:
        try:
            return step()
        except Exception as exc:
            if not busy(exc) or time.monotonic() >= give_up:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _held(exc: Exception) -> bool:
    return isinstance(exc, OSError) and exc.errno in _HELD


def _locked(exc: Exception) -> bool:
    # SQLite answers some collisions of processes opening a new file at once
    # (switching it to WAL, a read turning into a write) with "database is
    # locked" at once, without waiting on its busy timeout.
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


@dataclass(slots=True)
class _Claim:
    key: tuple[str, str]
    slot: int
    fingerprint: str
    at: float


class _Claims:
    """Request keys whose run handler is running, held across processes.

    In this process a dict says which key is held for which action; across
    processes each key holds an exclusive lock on byte ``slot`` of the claims
    file. Keys sharing a slot (a 32-bit checksum) merely wait for each other.
    POSIX record locks belong to a process (and closing any descriptor of
    the file drops them all), so each process keeps one of these per file,
    counts its holders per slot and locks a slot once.
    """

    def __init__(self, path: str | None) -> None:
        self._fd = (
            None
            if path is None
            else os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        )
        self.users = 0
        self._reset()

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._by_action: dict[str, _Claim] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._slots: dict[int, int] = {}
        self._forks = _forks[0]

    def take(
        self,
        key: tuple[str, str],
        fingerprint: str,
        action_id: str,
        now: float,
        lease: float,
    ) -> Literal["new", "pending", "conflict"]:
        """Hold ``key`` for ``action_id``, unless another holds it.

        A holder in this process older than ``lease`` is taken to be stuck
        and loses the key (its :meth:`give` then finds nothing). Of a holder
        in another process only its existence is known: ``"pending"``.
        """
        if self._forks != _forks[0]:
            # A forked child holds none of its parent's locks.
            self._reset()
        with self._mutex:
            held = self._by_key.get(key)
            if held is not None:
                claim = self._by_action[held]
                if now - claim.at < lease:
                    return "pending" if claim.fingerprint == fingerprint else "conflict"
                self._release(held)
            slot = zlib.crc32(f"{key[0]}\n{key[1]}".encode())
            if not self._slots.get(slot) and self._fd is not None:
                try:
                    fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except OSError as exc:
                    if exc.errno in _HELD:
                        return "pending"
                    raise
            self._slots[slot] = self._slots.get(slot, 0) + 1
            self._by_key[key] = action_id
            self._by_action[action_id] = _Claim(key, slot, fingerprint, now)
            return "new"

    def lock(self, slot: int, wait: float) -> bool:
        """Hold byte ``slot`` (outside the request keys' range) for this
        process, waiting at most ``wait`` seconds; ``False`` if it could not."""
        fd = self._fd
        if fd is None:
            return False
        try:
            _patiently(
                lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot),
                _held,
                wait,
            )
        except OSError:
            return False
        return True

    def unlock(self, slot: int) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, slot)

    def held(self, action_id: str) -> _Claim | None:
        return self._by_action.get(action_id)

    def give(self, action_id: str) -> _Claim | None:
        """Let go of ``action_id``'s key; ``None`` if it was not held."""
        with self._mutex:
            return self._release(action_id)

    def _release(self, action_id: str) -> _Claim | None:
        claim = self._by_action.pop(action_id, None)
        if claim is None:
            return None
        del self._by_key[claim.key]
        left = self._slots[claim.slot] - 1
        if left:
            self._slots[claim.slot] = left
        else:
            del self._slots[claim.slot]
            if self._fd is not None:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, claim.slot)
        return claim

    def close(self) -> None:
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._by_action.clear()
            self._by_key.clear()
            self._slots.clear()


# Token introspections lock bytes past the request keys' 32-bit range.
_TOKEN_SLOTS = 1 << 32


class _Introspections:
    """Token introspections shared by the processes using one SQLite file.

    A process about to introspect a token holds the token's byte of the
    claims file; the others wait for it, then read its result.
    """

    def __init__(self, store: SQLiteStore, claims: _Claims) -> None:
        self._store = store
        self._claims = claims
        self._next_purge = 0.0

    @contextmanager
    def hold(self, key: bytes, wait: float) -> Iterator[None]:
        slot = _TOKEN_SLOTS + int.from_bytes(key[:4], "big")
        held = self._claims.lock(slot, wait)
        try:
            yield
        finally:
            if held:
                self._claims.unlock(slot)

    def get(self, key: bytes, now: float) -> tuple[float, dict[str, Any]] | None:
        try:
            row = (
                self._store._db()
                .execute(
                    "SELECT expires_at, record FROM aptools_introspections"
                    " WHERE key = ? AND expires_at > ?",
                    (key, now),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            log.warning("shared introspections unreadable: %s", exc)
            return None
        if row is None:
            return None
        return float(row[0]), orjson.loads(row[1])

    def put(self, key: bytes, expires_at: float, record: dict[str, Any]) -> None:
        now = time.time()
        try:
            db = self._store._db()
            db.execute(
                "INSERT OR REPLACE INTO aptools_introspections VALUES (?, ?, ?)",
                (key, expires_at, orjson.dumps(record)),
            )
            if now >= self._next_purge:
                self._next_purge = now + 60
                db.execute(
                    "DELETE FROM aptools_introspections WHERE expires_at <= ?", (now,)
                )
        except sqlite3.Error as exc:
            log.warning("shared introspections not written: %s", exc)


_shared: dict[str, _Claims] = {}
_shared_mutex = threading.Lock()


def _open_claims(path: str) -> _Claims:
    """This process's claims on ``path``, shared by its stores of that file."""
    with _shared_mutex:
        claims = _shared.get(path)
        if claims is None:
            claims = _shared[path] = _Claims(path)
        claims.users += 1
        return claims


def _close_claims(path: str, claims: _Claims) -> None:
    with _shared_mutex:
        claims.users -= 1
        if claims.users <= 0 and _shared.get(path) is claims:
            del _shared[path]
            claims.close()


class SQLiteStore(Store):
    """Actions in a SQLite database file.

    >>> provider = Provider(..., store=SQLiteStore("/var/lib/myprovider/actions.db"))

    Each thread (and each forked worker) opens its own connection lazily.
    """

    # PERF: a local SQLite call takes microseconds; running it on the event
    # loop costs less than handing it to a thread.
    io_bound = False

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = str(path)
        self._timeout = timeout
        self._local = threading.local()
        self._claims_path: str | None = None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._claims_path = os.path.realpath(self.path) + "-claims"
        db = self._db()
        # Each statement may be repeated: where the tables exist already it
        # reads, and takes no write lock.
        _patiently(lambda: db.executescript(_SCHEMA), _locked, self._timeout)
        self._claims = (
            _Claims(None)
            if self._claims_path is None
            else _open_claims(self._claims_path)
        )

    def _db(self) -> sqlite3.Connection:
        local = self._local
        db: sqlite3.Connection | None = getattr(local, "db", None)
        # A forked worker must not share its parent's connection.
        if db is None or local.forks != _forks[0]:
            db = sqlite3.connect(
                self.path,
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            _patiently(
                lambda: db.execute("PRAGMA journal_mode=WAL"), _locked, self._timeout
            )
            db.execute("PRAGMA synchronous=NORMAL")
            local.db = db
            local.forks = _forks[0]
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def reserve(
        self,
        creator_id: str,
        request_id: str,
        fingerprint: str,
        action_id: str,
        now: float,
        lease: float,
    ) -> Reservation:
        key = (creator_id, request_id)
        taken = self._claims.take(key, fingerprint, action_id, now, lease)
        if taken != "new":
            return PENDING if taken == "pending" else CONFLICT
        try:
            row = (
                self._db()
                .execute(
                    "SELECT action_id, fingerprint, pending, expires_at,"
                    " status, creator_id, public, doc"
                    " FROM aptools_actions WHERE creator_id = ? AND request_id = ?",
                    key,
                )
                .fetchone()
            )
            if row is None:
                return NEW
            held, held_print, pending, expires_at = row[:4]
            if not pending and (expires_at is None or expires_at > now):
                self._claims.give(action_id)
                if held_print != fingerprint:
                    return CONFLICT
                return Reservation("existing", Stored(held, *row[4:]))
            # Expired, or a claim row left by an earlier version: gone.
            with self._write() as db:
                _delete(db, held)
        except BaseException:
            self._claims.give(action_id)
            raise
        return NEW

    def finish(self, stored: Stored, action: Action, expires_at: float | None) -> None:
        claim = self._claims.held(action.action_id)
        if claim is None:  # taken over as stuck; the new holder decides
            return
        try:
            self._insert(claim, stored, action, expires_at)
        finally:
            # Only now may another process look for the key and find it.
            self._claims.give(action.action_id)

    def _insert(
        self, claim: _Claim, stored: Stored, action: Action, expires_at: float | None
    ) -> None:
        values = (
            action.action_id,
            *claim.key,
            claim.fingerprint,
            claim.at,
            stored.status,
            expires_at,
            stored.public,
            stored.doc,
        )
        insert = (
            "INSERT INTO aptools_actions (action_id, creator_id, request_id,"
            " fingerprint, reserved_at, pending, status, expires_at, public, doc)"
            " VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"
        )
        shared = [(p, "monitor_by", action.action_id) for p in action.monitor_by]
        shared += [(p, "manage_by", action.action_id) for p in action.manage_by]
        if not shared:
            # PERF: the one write of a new action.
            self._db().execute(insert, values)
            return
        with self._write() as db:
            db.execute(insert, values)
            db.executemany(
                "INSERT OR IGNORE INTO aptools_principals VALUES (?, ?, ?)", shared
            )

    def abandon(self, action_id: str) -> None:
        self._claims.give(action_id)

    def get(self, action_id: str, now: float) -> Stored | None:
        row = self._db().execute(_GET, (action_id, now)).fetchone()
        return None if row is None else Stored(*row)

    def update(
        self, action_id: str, stored: Stored, expires_at: float | None, now: float
    ) -> Stored | None:
        changed = (
            self._db()
            .execute(
                _UPDATE,
                (
                    stored.status,
                    expires_at,
                    stored.public,
                    stored.doc,
                    action_id,
                    *_TERMINAL,
                    now,
                ),
            )
            .rowcount
        )
        return stored if changed else self.get(action_id, now)

    def delete(self, action_id: str) -> None:
        with self._write() as db:
            _delete(db, action_id)

    def list(
        self,
        principals: Mapping[str, Collection[str]],
        statuses: Collection[str],
        now: float,
    ) -> list[Action]:
        clauses = []
        params: list[object] = []
        for role, wanted in principals.items():
            if role not in ROLES or not wanted:
                continue
            marks = ",".join("?" * len(wanted))
            if role == "creator_id":
                clauses.append(f"a.creator_id IN ({marks})")
            else:
                clauses.append(
                    "a.action_id IN (SELECT p.action_id FROM aptools_principals p"  # noqa: S608
                    f" WHERE p.role = ? AND p.principal IN ({marks}))"
                )
                params.append(role)
            params.extend(wanted)
        if not clauses or not statuses:
            return []
        status_marks = ",".join("?" * len(statuses))
        sql = (
            "SELECT a.action_id, a.status, a.creator_id, a.public, a.doc"  # noqa: S608
            " FROM aptools_actions a WHERE a.pending = 0"
            f" AND a.status IN ({status_marks})"
            " AND (a.expires_at IS NULL OR a.expires_at > ?)"
            f" AND ({' OR '.join(clauses)})"
            " ORDER BY a.reserved_at"
        )
        rows = self._db().execute(sql, [*statuses, now, *params]).fetchall()
        return [Stored(*row).action() for row in rows]

    def purge(self, now: float) -> int:
        with self._write() as db:
            gone = [
                action_id
                for (action_id,) in db.execute(
                    "SELECT action_id FROM aptools_actions WHERE expires_at <= ?",
                    (now,),
                )
            ]
            for action_id in gone:
                _delete(db, action_id)
        return len(gone)

    def introspections(self) -> _Introspections | None:
        """Token introspections shared through this file (none in memory)."""
        if self._claims_path is None:
            return None
        return _Introspections(self, self._claims)

    def jobs(self) -> SQLiteJobQueue:
        """Background jobs in table ``aptools_jobs`` of this file."""
        from aptools.jobs.sqlite import SQLiteJobQueue

        return SQLiteJobQueue(self._db, getattr(self, "namespace", ""))

    def close(self) -> None:
        if self._claims_path is not None:
            _close_claims(self._claims_path, self._claims)
            self._claims_path = None
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _delete(db: sqlite3.Connection, action_id: str) -> None:
    db.execute("DELETE FROM aptools_actions WHERE action_id = ?", (action_id,))
    db.execute("DELETE FROM aptools_principals WHERE action_id = ?", (action_id,))
