"""Each caller's run bucket in PostgreSQL (:meth:`Store.count_run
<aptools.store.base.Store.count_run>`): table ``aptools_run_rates``, one row
per namespace and caller, the time its bucket is full again
(:mod:`aptools.store.runrates` gives the rule). One statement counts a run or
says how long to wait, on the database's clock, so every host counts
together; a row being counted is locked, so hosts counting at once take
turns and never both take the last run."""

# ruff: noqa: S608 - only the quoted, checked schema name is formatted in.

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

__all__ = ["RunRates"]

#: The database's clock, in POSIX seconds (the transaction's start).
_NOW: Final = "extract(epoch from now())::float8"


class RunRates:
    """The run buckets of one ``schema`` (statements built once), counted
    through ``run`` (:meth:`Database.run
    <aptools.store.postgresql.database.Database.run>`)."""

    def __init__(self, schema: str, run: Callable[[Callable[[Any], Any]], Any]) -> None:
        self._run = run
        table = f'"{schema}".aptools_run_rates'
        later = f"greatest(r.full_at, {_NOW}) + %(step)s"
        # Counted: the upsert returns its row. Refused: no row changes, and
        # the wait is read from the row as the statement's snapshot has it
        # (a count by another host committed meanwhile makes it too short,
        # never a refusal into a count).
        self._count = (
            f"WITH counted AS (INSERT INTO {table} AS r"
            " (namespace, identity_id, full_at)"
            f" VALUES (%(namespace)s, %(identity_id)s, {_NOW} + %(step)s)"
            " ON CONFLICT (namespace, identity_id) DO UPDATE"
            f" SET full_at = {later} WHERE {later} - %(per)s <= {_NOW}"
            " RETURNING 1)"
            " SELECT EXISTS (SELECT 1 FROM counted),"
            f" (SELECT {later} - %(per)s - {_NOW} FROM {table} r"
            "  WHERE r.namespace = %(namespace)s"
            "  AND r.identity_id = %(identity_id)s)"
        ).encode()
        self._purge = (
            f"DELETE FROM {table} WHERE namespace = %(namespace)s AND full_at <= {_NOW}"
        ).encode()

    def count(self, namespace: str, identity_id: str, runs: int, per: float) -> float:
        """:meth:`Store.count_run <aptools.store.base.Store.count_run>`."""
        step = per / runs
        params = {
            "namespace": namespace,
            "identity_id": identity_id,
            "step": step,
            "per": per,
        }

        def run(conn: Any) -> Any:
            return conn.execute(self._count, params).fetchone()

        counted, wait = self._run(run)
        if counted:
            return 0.0
        if wait is None:
            return step  # refused by a row the snapshot does not see yet
        return max(float(wait), 1e-3)

    def purge(self, namespace: str) -> None:
        """Delete the namespace's buckets that are full again (as good as none)."""

        def run(conn: Any) -> None:
            conn.execute(self._purge, {"namespace": namespace})

        self._run(run)
