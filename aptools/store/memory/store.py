"""An in-process store: fast, and gone when the process ends."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from aptools.models import Action
from aptools.store.base import (
    CONFLICT,
    NEW,
    PENDING,
    RequestKey,
    Reservation,
    Store,
    Stored,
)
from aptools.store.memory.jobs import MemoryJobQueue
from aptools.store.runrates import take_run
from aptools.vocabulary import TERMINAL

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Row:
    creator_id: str
    request_id: str
    fingerprint: str
    reserved_at: float
    # None while reserved; records are immutable, so readers need no lock.
    stored: Stored | None = None
    expires_at: float | None = None
    monitor_by: tuple[str, ...] = ()
    manage_by: tuple[str, ...] = ()

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


class MemoryStore(Store):
    """Actions in a dict, guarded by one lock. For tests and single processes.

    >>> provider = Provider(..., store=MemoryStore())

    Each namespace has dicts of its own; views made by :meth:`for_provider`
    share the lock and the table of namespaces.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spaces: dict[str, tuple[dict[str, _Row], dict[tuple[str, str], str]]]
        self._spaces = {}
        self._queues: dict[str, MemoryJobQueue] = {}
        # Each caller's run bucket (aptools.store.runrates), by namespace.
        self._rates: dict[tuple[str, str], float] = {}
        self._namespace = ""
        self._bind("")

    def _bind(self, namespace: str) -> None:
        with self._lock:
            # PERF: a view reads its namespace's own dicts; no row is ever
            # compared with its namespace.
            self._rows, self._keys = self._spaces.setdefault(namespace, ({}, {}))
            self._namespace = namespace

    def for_provider(self, namespace: str) -> MemoryStore:
        # A shallow copy: the same lock and namespaces (and whatever a
        # subclass keeps), bound to another namespace.
        view = copy.copy(self)
        view._bind(namespace)
        return view

    def reserve(
        self, key: RequestKey, action_id: str, now: float, lease: float
    ) -> Reservation:
        # PERF: unpacked at once; three field reads cost twice as much.
        creator_id, request_id, fingerprint = key
        pair = (creator_id, request_id)
        with self._lock:
            held = self._keys.get(pair)
            row = self._rows.get(held) if held is not None else None
            if row is not None and row.live(now):
                if row.fingerprint != fingerprint:
                    return CONFLICT
                if row.stored is not None:
                    return Reservation("existing", row.stored)
                if now - row.reserved_at < lease:
                    return PENDING
            if held is not None:
                self._rows.pop(held, None)
            self._rows[action_id] = _Row(creator_id, request_id, fingerprint, now)
            self._keys[pair] = action_id
            return NEW

    def renew(self, action_ids: Collection[str], now: float) -> None:
        with self._lock:
            for action_id in action_ids:
                row = self._rows.get(action_id)
                if row is not None and row.stored is None:
                    row.reserved_at = max(row.reserved_at, now)

    def create(self, stored: Stored, action: Action, expires_at: float | None) -> None:
        with self._lock:
            row = self._rows.get(action.action_id)
            if row is None or row.stored is not None:
                return
            row.expires_at = expires_at
            row.monitor_by = tuple(action.monitor_by)
            row.manage_by = tuple(action.manage_by)
            row.stored = stored.trimmed()

    def jobs(self) -> MemoryJobQueue:
        """Background jobs in this process, beside the actions."""
        with self._lock:
            # One queue per namespace, shared by every view of it.
            queue = self._queues.get(self._namespace)
            if queue is None:
                queue = self._queues[self._namespace] = MemoryJobQueue(self)
            return queue

    def abandon(self, action_id: str) -> None:
        with self._lock:
            row = self._rows.get(action_id)
            if row is not None and row.stored is None:
                self._drop(action_id)

    def get(self, action_id: str, now: float) -> Stored | None:
        row = self._rows.get(action_id)
        if row is None or (row.expires_at is not None and row.expires_at <= now):
            return None
        return row.stored

    def update(
        self, action_id: str, stored: Stored, expires_at: float | None, now: float
    ) -> Stored | None:
        with self._lock:
            return self._write(action_id, stored, expires_at, now)

    def _write(
        self,
        action_id: str,
        stored: Stored,
        expires_at: float | None,
        now: float,
        only_if: str | None = None,
    ) -> Stored | None:
        # With the lock held (the job queue holds it across a job's row and
        # its action). ``only_if``: write only an action in this status.
        row = self._rows.get(action_id)
        if row is None or row.stored is None or not row.live(now):
            return None
        status = row.stored.status
        if status not in TERMINAL and (only_if is None or status == only_if):
            row.expires_at = expires_at
            row.stored = stored.trimmed()
            if stored.status in TERMINAL:
                self._drop_tokens(action_id)
        return row.stored

    def delete(self, action_id: str) -> None:
        with self._lock:
            self._drop(action_id)

    def _drop_tokens(self, action_id: str) -> None:
        # An action that ended or went takes its job's kept tokens along,
        # under the same lock as the change (held by the caller).
        queue = self._queues.get(self._namespace)
        if queue is not None:
            queue.drop_tokens(action_id)

    def _drop(self, action_id: str) -> None:
        row = self._rows.pop(action_id, None)
        self._drop_tokens(action_id)
        if row is not None:
            key = (row.creator_id, row.request_id)
            if self._keys.get(key) == action_id:
                del self._keys[key]

    def list(
        self,
        principals: Mapping[str, Collection[str]],
        statuses: Collection[str],
        now: float,
    ) -> list[Action]:
        with self._lock:
            rows = list(self._rows.values())
        found = []
        for row in rows:
            stored = row.stored
            if stored is None or stored.status not in statuses or not row.live(now):
                continue
            if _holds(row, principals):
                found.append(stored.action())
        return found

    def purge(self, now: float) -> int:
        with self._lock:
            gone = [aid for aid, row in self._rows.items() if not row.live(now)]
            for action_id in gone:
                self._drop(action_id)
        return len(gone)

    def count_run(self, identity_id: str, runs: int, per: float) -> float:
        # In process: this store's actions are too.
        key = (self._namespace, identity_id)
        now = time.time()
        with self._lock:
            full_at, wait = take_run(self._rates.get(key), now, runs, per)
            if full_at is not None:
                self._rates[key] = full_at
            if len(self._rates) > 100_000:  # drop the full buckets
                for old in [k for k, at in self._rates.items() if at <= now]:
                    del self._rates[old]
        return wait

    def __len__(self) -> int:
        return len(self._rows)


def _holds(row: _Row, principals: Mapping[str, Collection[str]]) -> bool:
    for role, wanted in principals.items():
        if role == "creator_id":
            if row.creator_id in wanted:
                return True
        elif role in ("monitor_by", "manage_by") and any(
            p in wanted for p in getattr(row, role)
        ):
            return True
    return False
