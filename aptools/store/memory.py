"""An in-process store: fast, and gone when the process ends."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import orjson

from aptools.models import TERMINAL, Action
from aptools.store.base import Reservation, Store

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Row:
    creator_id: str
    request_id: str
    fingerprint: str
    reserved_at: float
    pending: bool = True
    status: str = ""
    expires_at: float | None = None
    # Serialized, so a handler mutating its copy never touches the store.
    doc: bytes = b""

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


class MemoryStore(Store):
    """Actions in a dict, guarded by one lock. For tests and single processes.

    >>> provider = Provider(..., store=MemoryStore())
    """

    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

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
        with self._lock:
            held = self._keys.get(key)
            row = self._rows.get(held) if held is not None else None
            if row is not None and row.live(now):
                if row.fingerprint != fingerprint:
                    return Reservation("conflict")
                if not row.pending:
                    return Reservation("existing", _load(row.doc))
                if now - row.reserved_at < lease:
                    return Reservation("pending")
            if held is not None:
                self._rows.pop(held, None)
            self._rows[action_id] = _Row(creator_id, request_id, fingerprint, now)
            self._keys[key] = action_id
            return Reservation("new")

    def finish(self, action: Action, expires_at: float | None) -> None:
        with self._lock:
            row = self._rows.get(action.action_id)
            if row is None:
                return
            # Readers take no lock: the document is in place before the row
            # stops being pending.
            row.doc = orjson.dumps(action.to_doc())
            row.status = action.status
            row.expires_at = expires_at
            row.pending = False

    def abandon(self, action_id: str) -> None:
        self.delete(action_id)

    def get(self, action_id: str, now: float) -> Action | None:
        row = self._rows.get(action_id)
        if row is None or row.pending or not row.live(now):
            return None
        return _load(row.doc)

    def update(
        self, action: Action, expires_at: float | None, now: float
    ) -> Action | None:
        with self._lock:
            row = self._rows.get(action.action_id)
            if row is None or row.pending or not row.live(now):
                return None
            if row.status in TERMINAL:
                return _load(row.doc)
            row.status = action.status
            row.expires_at = expires_at
            row.doc = orjson.dumps(action.to_doc())
            return _load(row.doc)

    def delete(self, action_id: str) -> None:
        with self._lock:
            row = self._rows.pop(action_id, None)
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
            rows = [
                row
                for row in self._rows.values()
                if not row.pending and row.status in statuses and row.live(now)
            ]
        found = []
        for row in rows:
            action = _load(row.doc)
            if _holds(action, principals):
                found.append(action)
        return found

    def purge(self, now: float) -> int:
        with self._lock:
            gone = [aid for aid, row in self._rows.items() if not row.live(now)]
        for action_id in gone:
            self.delete(action_id)
        return len(gone)

    def __len__(self) -> int:
        return len(self._rows)


def _load(doc: bytes) -> Action:
    return Action.from_doc(orjson.loads(doc))


def _holds(action: Action, principals: Mapping[str, Collection[str]]) -> bool:
    for role, wanted in principals.items():
        if role == "creator_id":
            if action.creator_id in wanted:
                return True
        elif any(p in wanted for p in getattr(action, role)):
            return True
    return False
