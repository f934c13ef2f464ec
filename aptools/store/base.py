"""The action store interface: what any backend must provide.

A store keeps every action and the request key that created it. Its methods
are small and each is atomic on its own; the framework composes them into the
protocol's rules (idempotent run, terminal states that never change, expiry).
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from aptools.errors import StoreUnavailable
from aptools.models import Action
from aptools.store.records import (
    CONFLICT,
    NEW,
    PENDING,
    ROLES,
    RequestKey,
    Reservation,
    Stored,
)

if TYPE_CHECKING:
    from aptools.auth import SharedIntrospections
    from aptools.store.jobqueue import JobQueue

__all__ = [
    "CONFLICT",
    "NEW",
    "PENDING",
    "ROLES",
    "RequestKey",
    "Reservation",
    "Store",
    "Stored",
]


class Store(abc.ABC):
    """Where actions live. Subclass it to add a backend (and run
    :class:`aptools.testing.store_contract.StoreContract` to prove it).

    Times are POSIX timestamps in seconds. ``expires_at`` is when a terminal
    action is released by itself (``None`` while it is not terminal); from
    that moment on every method treats the action as absent. Action ids are
    unique in the whole store (the framework draws 122 random bits for each).

    A store object is a view of its backend bound to one provider's
    namespace (see :meth:`for_provider`); a store opened directly is bound
    to the namespace ``""``.
    """

    #: True when calls may wait on the network; the ASGI app then runs them in
    #: a worker thread instead of on the event loop.
    io_bound: bool = False

    @abc.abstractmethod
    def for_provider(self, namespace: str) -> Store:
        """A view of this store scoped to one provider.

        It shares this store's connections, but every action, request key
        and shared introspection it reads or writes belongs to ``namespace``
        only: two providers on one database never see each other's actions
        or request ids. :meth:`Provider.compile` calls it with the provider's
        ``store_namespace`` (by default ``f"{scope} {prefix}"``).
        """

    @abc.abstractmethod
    def reserve(
        self, key: RequestKey, action_id: str, now: float, lease: float
    ) -> Reservation:
        """Atomically hold ``key`` (its creator and request id) for a new
        action ``action_id``.

        A hold still pending after ``lease`` seconds is taken to belong to a
        crashed or stuck run and is handed to this caller as ``"new"`` (the
        old holder's :meth:`create` then stores nothing). A store that learns
        of a holder's death directly, as the SQLite store does across
        processes, may hand the key on sooner, and need not hand over a key
        whose holder it knows to be alive.
        """

    @abc.abstractmethod
    def create(self, stored: Stored, action: Action, expires_at: float | None) -> None:
        """Store the first state of a reserved action and release the hold.

        ``stored`` is ``Stored.of(action)``; ``action`` gives the principals.
        Nothing is stored when the reservation was abandoned or handed over.
        """

    def renew(self, action_ids: Collection[str], now: float) -> None:  # noqa: B027
        """The holder of these reservations is alive at ``now``: each one's
        ``lease`` (see :meth:`reserve`) counts from ``now`` again. Called by
        the process running their run handlers every third of the run lease,
        so that a live holder keeps its keys however long its handler runs,
        and a dead one's are free a lease after its last renewal. Unknown or
        stored actions are left alone. The default renews nothing (a store
        whose holds end with their process, or one that does not know)."""

    @abc.abstractmethod
    def abandon(self, action_id: str) -> None:
        """Drop a reservation whose handler failed, freeing its request key.

        Unknown or finished actions are left alone.
        """

    @abc.abstractmethod
    def get(self, action_id: str, now: float) -> Stored | None:
        """The action, or ``None`` if unknown, pending, released or expired."""

    @abc.abstractmethod
    def update(
        self, action_id: str, stored: Stored, expires_at: float | None, now: float
    ) -> Stored | None:
        """Save a new state and return what is stored afterwards.

        A terminal action never changes: if the stored one is terminal the
        update is refused and the stored action is returned. ``None`` when the
        action is gone.
        """

    @abc.abstractmethod
    def delete(self, action_id: str) -> None:
        """Remove the action and its request key (nothing if unknown)."""

    @abc.abstractmethod
    def list(
        self,
        principals: Mapping[str, Collection[str]],
        statuses: Collection[str],
        now: float,
    ) -> list[Action]:
        """Actions in ``statuses`` where any role in ``principals`` (a role
        name of :data:`ROLES` to principal URNs) holds one of its principals."""

    @abc.abstractmethod
    def purge(self, now: float) -> int:
        """Delete this namespace's expired actions; return how many went."""

    def introspections(self) -> SharedIntrospections | None:
        """A place where the worker processes using this store share token
        introspections, keyed within this view's namespace, or ``None`` (the
        default: each process keeps its own).
        """
        return None

    def count_run(self, identity_id: str, runs: int, per: float) -> float:
        """Count one run of ``identity_id`` in this namespace against its
        bucket of ``runs`` runs, refilled at ``runs`` per ``per`` seconds (a
        token bucket, kept as one time per caller: the moment its bucket is
        full again), as one atomic step on the store's clock, so every
        process and host sharing the store counts together.

        Returns 0.0 when the run is counted; else the seconds (> 0) until
        the bucket holds a run again, counting nothing. The provider's
        ``max_runs_per_caller`` rests on it. Raises
        :class:`NotImplementedError` on a store without it (the default);
        network stores raise :class:`~aptools.StoreUnavailable` as their
        other methods do."""
        raise NotImplementedError(f"{type(self).__name__} cannot count runs")

    def jobs(self) -> JobQueue | None:
        """The queue of background jobs kept beside the actions, or ``None``
        (the default: this store cannot hold jobs)."""
        return None

    def ready(self) -> None:
        """Return when this store can serve requests now; raise
        :class:`~aptools.StoreUnavailable` when it cannot, with a one-line
        reason as its description (never a URL or a credential).

        The readiness route (``GET {prefix}/ready``) asks this, at most once
        every few seconds per process: it should be one cheap round trip
        (reach the backend, read its schema version) and fail rather than
        wait long. A store whose schema version is not the one this code
        expects is not ready. The default: ready unless :attr:`closed`.
        """
        if self.closed:
            raise StoreUnavailable("The action store is closed.")

    @property
    def closed(self) -> bool:
        """Whether this store (this view) was closed and must not be used
        again: the threads working on it in the background (housekeeping,
        the job runner) then stop. The default: never."""
        return False

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (those of every view of the same store);
        the default holds none."""
