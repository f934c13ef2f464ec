"""The PostgreSQL store behind the store interface of this release.

The PostgreSQL store implements the consolidated interface (``reserve``
takes a :class:`RequestKey`; ``for_provider`` binds a namespace). Until that
interface is the one of :class:`aptools.Store`, this adapter lets the
framework call it; it goes when the interface lands.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from aptools.models import Action
from aptools.store.base import Reservation, Store, Stored
from aptools.store.postgresql._interface import RequestKey
from aptools.store.postgresql.introspections import Introspections
from aptools.store.postgresql.store import PostgreSQLStore

__all__ = ["Adapted", "open_adapted"]


class Adapted(Store):
    """A :class:`PostgreSQLStore` view called through today's interface."""

    io_bound = True

    def __init__(self, store: PostgreSQLStore) -> None:
        self.store = store

    def reserve(
        self,
        creator_id: str,
        request_id: str,
        fingerprint: str,
        action_id: str,
        now: float,
        lease: float,
    ) -> Reservation:
        key = RequestKey(creator_id, request_id, fingerprint)
        return self.store.reserve(key, action_id, now, lease)

    def finish(self, stored: Stored, action: Action, expires_at: float | None) -> None:
        self.store.finish(stored, action, expires_at)

    def abandon(self, action_id: str) -> None:
        self.store.abandon(action_id)

    def get(self, action_id: str, now: float) -> Stored | None:
        return self.store.get(action_id, now)

    def update(
        self, action_id: str, stored: Stored, expires_at: float | None, now: float
    ) -> Stored | None:
        return self.store.update(action_id, stored, expires_at, now)

    def delete(self, action_id: str) -> None:
        self.store.delete(action_id)

    def list(
        self,
        principals: Mapping[str, Collection[str]],
        statuses: Collection[str],
        now: float,
    ) -> list[Action]:
        return self.store.list(principals, statuses, now)

    def purge(self, now: float) -> int:
        return self.store.purge(now)

    def introspections(self) -> Introspections:
        return self.store.introspections()

    def close(self) -> None:
        self.store.close()


def open_adapted(url: str) -> Adapted:
    """``open_store``'s way to a PostgreSQL store until the registry lands."""
    return Adapted(PostgreSQLStore(url))
