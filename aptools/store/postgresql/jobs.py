"""The job queue of a :class:`~aptools.store.postgresql.PostgreSQLStore`.

Jobs live in table ``aptools_jobs`` of the store's schema (created by the
store's migrations, :mod:`aptools.store.postgresql.schema`), beside its
``aptools_actions``. Each method is one statement in autocommit (resume is
one transaction), sent through the store's per-process pool
(:meth:`Database.run`): a forked worker never uses its parent's
connections, a broken idle connection is replaced, and an unreachable or
slow database raises :class:`aptools.StoreUnavailable`, as every store call
does. A claim locks the rows it takes with ``FOR UPDATE SKIP LOCKED``, so
processes on many hosts claim at once without waiting for each other and
never take the same job twice.

Time is the database's: leases, take-overs, deadlines and the sweep compare
with ``now()`` in the statement, never with a host's clock, so hosts whose
clocks disagree still agree on who holds a job. A write of a claimed job
names its fence (``owner`` and ``claims``); the holder's progress write
locks the job row (``FOR SHARE``) so that a take-over either waits for it
or refuses it.
"""

# ruff: noqa: S608 - only the quoted, checked schema name is formatted in.

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

from psycopg.types.json import Jsonb

from aptools.store.jobqueue import Beat, Claimed, Fence, JobQueue, JobRow, lost
from aptools.store.postgresql.ending import (
    claimed_fairly,
    claimed_row,
    ending_statements,
)
from aptools.store.postgresql.listen import Listener, channel
from aptools.store.postgresql.operating import operating_statements
from aptools.store.records import Stored
from aptools.vocabulary import ACTIVE, INACTIVE, TERMINAL

if TYPE_CHECKING:
    from aptools.store.postgresql.database import Conn, Database

__all__ = ["PostgresJobQueue"]

#: The database's clock, in POSIX seconds (the statement's start).
_NOW: Final = "extract(epoch from now())::float8"
_TERMINAL: Final = sorted(TERMINAL)
_HELD: Final = "namespace = %s AND action_id = %s AND owner = %s AND claims = %s"
_FENCES: Final = (
    "(action_id, owner, claims) IN"
    " (SELECT * FROM unnest(%s::text[], %s::text[], %s::int[]))"
)


class PostgresJobQueue(JobQueue):
    """The jobs of one provider (``namespace``) in the store behind ``db``."""

    # PERF: 4 empty jobs at once on a loaded machine (load 17-20 on 2 cores,
    # the server's WAL flushes slow): 89-108 jobs/s when each job thread
    # ended and claimed in one statement, 116-186 when the runner claimed
    # for all (benchmarks/README.md, job queues); the end's commit waits for
    # the disk, and ends claiming at once waited for each other's row locks.
    claim_at_end = False

    def __init__(self, db: Database, namespace: str) -> None:
        self._db = db
        self._ns = namespace
        schema = f'"{db.settings.schema}"'
        jobs, actions = f"{schema}.aptools_jobs", f"{schema}.aptools_actions"
        # The job's action, in its namespace, still ACTIVE or INACTIVE.
        alive = (
            f"EXISTS (SELECT 1 FROM {actions} a WHERE a.namespace = j.namespace"
            " AND a.action_id = j.action_id"
            f" AND a.status IN ('{ACTIVE}', '{INACTIVE}'))"
        )
        set_action = "status = %s, expires_at = %s, public = %s, doc = %s"
        unfinished = "NOT a.pending AND a.status <> ALL(%s)"
        hand_back = "owner = NULL, lease_until = 0, attempts = attempts - 1"
        self._now = f"SELECT {_NOW}".encode()
        self._channel = channel(db.settings.schema, namespace)
        self._announce = f"SELECT pg_notify('{self._channel}', '')".encode()
        self._enqueue = (
            f"INSERT INTO {jobs} (namespace, action_id, enqueued_at, deadline,"
            f" caller, tokens) VALUES (%s, %s, {_NOW}, %s, %s, %s)"
            " ON CONFLICT (namespace, action_id) DO UPDATE SET"
            " enqueued_at = EXCLUDED.enqueued_at, deadline = EXCLUDED.deadline,"
            " caller = EXCLUDED.caller, tokens = EXCLUDED.tokens"
        ).encode()
        self._heartbeat = (
            f"UPDATE {jobs} SET lease_until = {_NOW} + %s"
            f" WHERE namespace = %s AND {_FENCES}"
            " RETURNING action_id, cancel_requested"
        ).encode()
        self._take = (
            f"UPDATE {jobs} SET owner = %s, lease_until = {_NOW} + %s,"
            " claims = claims + 1 WHERE namespace = %s AND action_id = %s"
            " RETURNING claims"
        ).encode()
        self._hand_back = (
            f"UPDATE {jobs} SET {hand_back} WHERE namespace = %s AND {_FENCES}"
        ).encode()
        self._interrupt = (
            f"UPDATE {jobs} SET owner = NULL, lease_until = 0"
            f" WHERE namespace = %s AND {_FENCES}"
        ).encode()
        self._delete = f"DELETE FROM {jobs} WHERE {_HELD}".encode()
        self._cancel = (
            f"UPDATE {jobs} SET cancel_requested = true"
            " WHERE namespace = %s AND action_id = %s"
        ).encode()
        self._checkpoint = f"UPDATE {jobs} SET checkpoint = %s WHERE {_HELD}".encode()
        # Fenced, and only while the action is alive: an ended action's
        # tokens went with its end and never come back.
        self._tokens = (
            f"UPDATE {jobs} j SET tokens = %s WHERE {_HELD} AND {alive}"
        ).encode()
        self._kept = (
            f"SELECT action_id, tokens FROM {jobs}"
            " WHERE namespace = %s AND tokens IS NOT NULL"
        ).encode()
        # Unfenced (an operator's re-key), a compare-and-set on the tokens.
        self._replace = (
            f"UPDATE {jobs} j SET tokens = %s"
            " WHERE j.namespace = %s AND j.action_id = %s AND j.tokens = %s"
            f" AND NOT EXISTS (SELECT 1 FROM {actions} a"
            " WHERE a.namespace = j.namespace AND a.action_id = j.action_id"
            f" AND a.status IN {tuple(_TERMINAL)!r})"
        ).encode()
        self._due = (
            f"SELECT j.action_id FROM {jobs} j WHERE j.namespace = %s"
            f" AND j.deadline <= {_NOW} AND {alive}"
        ).encode()
        self._sweep = (
            f"DELETE FROM {jobs} j WHERE j.namespace = %s AND j.lease_until < {_NOW}"
            f" AND j.enqueued_at < {_NOW} - %s AND NOT {alive}"
        ).encode()
        # One statement: progress. The job row is locked for share, so a
        # take-over committing first refuses it, and one coming later waits.
        self._save = (
            f"UPDATE {actions} a SET {set_action}"
            f" WHERE a.namespace = %s AND a.action_id = %s AND {unfinished}"
            f" AND EXISTS (SELECT 1 FROM {jobs} WHERE {_HELD} FOR SHARE)"
        ).encode()
        self._after_save = (
            f"SELECT (SELECT count(*) FROM {jobs} WHERE {_HELD}),"
            " a.action_id, a.status, a.creator_id, a.public, a.doc"
            f" FROM (SELECT 1) one LEFT JOIN {actions} a ON a.namespace = %s"
            " AND a.action_id = %s AND NOT a.pending"
        ).encode()
        self._ends = ending_statements(jobs, actions)
        # The operator's statements (console, fair share, traces).
        self._ops = operating_statements(jobs, actions, db.settings.schema, namespace)
        self._resume_row = (
            f"SELECT deadline IS NOT NULL AND deadline <= {_NOW} FROM {jobs}"
            " WHERE namespace = %s AND action_id = %s FOR UPDATE"
        ).encode()
        self._resume_action = (
            f"UPDATE {actions} a SET {set_action}"
            " WHERE a.namespace = %s AND a.action_id = %s AND NOT a.pending"
            " AND a.status = %s"
        ).encode()
        self._resume_job = (
            f"INSERT INTO {jobs} AS j (namespace, action_id, enqueued_at,"
            f" deadline, caller, tokens, claims) VALUES (%s, %s, {_NOW}, %s, %s,"
            " %s, 1) ON CONFLICT (namespace, action_id) DO UPDATE SET owner = NULL,"
            " lease_until = 0, claims = j.claims + 1,"
            " caller = EXCLUDED.caller, tokens = EXCLUDED.tokens"
        ).encode()

    def __repr__(self) -> str:
        return f"PostgresJobQueue(namespace={self._ns!r})"

    def _rows(self, statement: bytes, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def fetch(conn: Conn) -> list[tuple[Any, ...]]:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description is not None else []

        return self._db.run(fetch)

    def _count(self, statement: bytes, params: tuple[Any, ...]) -> int:
        def execute(conn: Conn) -> int:
            return conn.execute(statement, params).rowcount

        return self._db.run(execute)

    def _fence(self, fence: Fence) -> tuple[str, str, str, int]:
        return (self._ns, fence.action_id, fence.owner, fence.claim)

    @staticmethod
    def _action(stored: Stored, expires_at: float | None) -> tuple[Any, ...]:
        return (stored.status, expires_at, stored.public, stored.doc)

    @staticmethod
    def _fences(fences: Collection[Fence]) -> tuple[list[str], list[str], list[int]]:
        return (
            [f.action_id for f in fences],
            [f.owner for f in fences],
            [f.claim for f in fences],
        )

    def now(self) -> float:
        return float(self._rows(self._now, ())[0][0])

    def enqueue(
        self,
        action_id: str,
        deadline: float | None,
        caller: Mapping[str, Any],
        tokens: bytes | None = None,
    ) -> None:
        self._count(
            self._enqueue,
            (self._ns, action_id, deadline, Jsonb(dict(caller)), tokens),
        )

    def announce(self) -> None:
        # Sent after the run's transaction, not in it: the job row is written
        # before the action's first state, and a runner woken between the two
        # would find nothing to claim.
        self._count(self._announce, ())

    def listen(self, wake: Callable[[], None]) -> Callable[[], None] | None:
        return Listener(self._db, self._channel, wake).close

    def claim(self, owner: str, lease: float, limit: int) -> list[Claimed]:
        rows = self._rows(
            self._ends.claim, (self._ns, ACTIVE, limit, owner, lease, self._ns)
        )
        return [claimed_row(owner, row) for row in rows]

    def heartbeat(self, fences: Collection[Fence], lease: float) -> list[Beat]:
        if not fences:
            return []
        rows = self._rows(self._heartbeat, (lease, self._ns, *self._fences(fences)))
        return [Beat(action_id, bool(stop)) for action_id, stop in rows]

    def hand_back(self, fences: Collection[Fence]) -> None:
        if fences:
            self._count(self._hand_back, (self._ns, *self._fences(fences)))

    def interrupt(self, fences: Collection[Fence]) -> None:
        if fences:
            self._count(self._interrupt, (self._ns, *self._fences(fences)))

    def requeue_for(
        self,
        action_id: str,
        stored: Stored,
        caller: Mapping[str, Any],
        tokens: bytes | None,
        deadline: float | None,
    ) -> Stored | None:
        record = Jsonb(dict(caller))

        def swap(conn: Conn) -> bool:
            with conn.transaction():
                row = conn.execute(self._resume_row, (self._ns, action_id)).fetchone()
                if row is not None and row[0]:
                    return False  # past its deadline, by the database's clock
                changed = conn.execute(
                    self._resume_action,
                    (*self._action(stored, None), self._ns, action_id, INACTIVE),
                ).rowcount
                if not changed:
                    return False
                conn.execute(
                    self._resume_job, (self._ns, action_id, deadline, record, tokens)
                )
                return True

        return stored if self._db.run(swap) else None

    def save(
        self, fence: Fence, stored: Stored, expires_at: float | None
    ) -> Stored | None:
        params = (
            *self._action(stored, expires_at),
            self._ns,
            fence.action_id,
            _TERMINAL,
            *self._fence(fence),
        )
        if self._count(self._save, params):
            return stored
        row = self._rows(
            self._after_save, (*self._fence(fence), self._ns, fence.action_id)
        )[0]
        if not row[0]:
            raise lost(fence)
        return None if row[1] is None else Stored(*row[1:])

    def conclude(
        self, fence: Fence, stored: Stored, expires_at: float | None, keep: bool
    ) -> None:
        ending = self._ends
        statement = ending.conclude_keep if keep else ending.conclude
        params = (
            *self._fence(fence),
            *self._action(stored, expires_at),
            self._ns,
            _TERMINAL,
        )
        if not self._rows(statement, params)[0][0]:
            raise lost(fence)

    def conclude_and_claim(
        self,
        fence: Fence,
        stored: Stored,
        expires_at: float | None,
        keep: bool,
        owner: str,
        lease: float,
        limit: int,
        per_caller: int | None = None,
    ) -> list[Claimed]:
        ending = self._ends
        concluding = (
            *self._fence(fence),
            *self._action(stored, expires_at),
            self._ns,
            _TERMINAL,
        )
        if per_caller is not None:
            # Fair share takes turns at a lock: a transaction of three.
            fair = (owner, lease, self._ns, self._ns, ACTIVE, self._ns, per_caller)
            statement = ending.conclude_keep if keep else ending.conclude

            def take(conn: Conn) -> list[tuple[Any, ...]]:
                with conn.transaction():
                    if not conn.execute(statement, concluding).fetchall()[0][0]:
                        raise lost(fence)  # rolls back: nothing changed
                    conn.execute(self._ops.fair_lock, (self._ops.fair_key,))
                    return conn.execute(self._ops.claim_fair, (*fair, limit)).fetchall()

            return claimed_fairly(owner, self._db.run(take))
        statement = ending.conclude_keep_claim if keep else ending.conclude_claim
        claiming = (self._ns, ACTIVE, fence.action_id, limit, owner, lease, self._ns)
        rows = self._rows(statement, (*concluding, *claiming))
        if not rows[0][0]:
            raise lost(fence)
        return [claimed_row(owner, row[1:]) for row in rows if row[1] is not None]

    def delete(self, fence: Fence) -> bool:
        return bool(self._count(self._delete, self._fence(fence)))

    def request_cancel(self, action_id: str) -> None:
        self._count(self._cancel, (self._ns, action_id))

    def checkpoint(self, fence: Fence, state: bytes) -> None:
        if not self._count(self._checkpoint, (state, *self._fence(fence))):
            raise lost(fence)

    def save_tokens(self, fence: Fence, tokens: bytes) -> bool:
        return bool(self._count(self._tokens, (tokens, *self._fence(fence))))

    def kept_tokens(self) -> dict[str, bytes]:
        return {a: bytes(t) for a, t in self._rows(self._kept, (self._ns,))}

    def replace_tokens(self, action_id: str, old: bytes, new: bytes) -> bool:
        return bool(self._count(self._replace, (new, self._ns, action_id, old)))

    def due(self) -> list[str]:
        return [a for (a,) in self._rows(self._due, (self._ns,))]

    def sweep(self, grace: float) -> int:
        return self._count(self._sweep, (self._ns, grace))

    def rows(self) -> list[JobRow]:
        return [
            JobRow(a, e, d, c, o, lu, at, cl, bool(cr))
            for a, e, d, c, o, lu, at, cl, cr in self._rows(
                self._ops.rows_all, (self._ns,)
            )
        ]

    def take(self, action_id: str, owner: str, lease: float) -> Fence | None:
        rows = self._rows(self._take, (owner, lease, self._ns, action_id))
        return None if not rows else Fence(action_id, owner, rows[0][0])

    def keep_trace(self, action_id: str, traceparent: str) -> None:
        self._count(self._ops.keep_trace, (traceparent, self._ns, action_id))

    def origin(self, action_id: str) -> tuple[str | None, float] | None:
        rows = self._rows(self._ops.origin, (self._ns, action_id))
        return None if not rows else (rows[0][0], float(rows[0][1]))

    def counts(self) -> dict[str, int]:
        rows = self._rows(self._ops.counts, (self._ns,))
        return {"queued": 0, "running": 0, "waiting": 0, **dict(rows)}

    def claim_fair(
        self, owner: str, lease: float, limit: int, per_caller: int
    ) -> list[Claimed]:
        params = (owner, lease, self._ns, self._ns, ACTIVE, self._ns, per_caller, limit)

        def take(conn: Conn) -> list[tuple[Any, ...]]:
            with conn.transaction():
                conn.execute(self._ops.fair_lock, (self._ops.fair_key,))
                return conn.execute(self._ops.claim_fair, params).fetchall()

        return claimed_fairly(owner, self._db.run(take))

    def ahead(self, identity_id: str) -> int:
        return int(self._rows(self._ops.ahead, (self._ns, identity_id))[0][0])

    def ahead_of(self, action_id: str) -> int | None:
        rows = self._rows(self._ops.ahead_of, (self._ns, action_id))
        return None if not rows else int(rows[0][0])
