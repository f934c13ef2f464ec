"""The job queue interface: the store's table of background jobs.

The action *is* the job. A job row sits beside the action in the same
database and says who runs it (``owner``) until when (``lease_until``),
how often it was claimed (``attempts``), its last checkpoint, its deadline
and whether cancellation was asked for. A process claims rows whose lease
ran out, renews its leases with a heartbeat, and deletes a row when the job
ends. Times are POSIX timestamps (seconds).

A row is enqueued *before* the action's first state is stored, and is only
claimable while its action is stored ACTIVE: a process that dies between
the two leaves a row without an action, which :meth:`JobQueue.sweep` deletes;
an accepted action always has its row.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Beat", "Claimed", "JobQueue"]


@dataclass(slots=True, frozen=True)
class Claimed:
    """A job just claimed: run it.

    ``attempts`` counts claims, this one included, minus hand-backs: more than
    1 means an earlier holder died with it. ``checkpoint`` is the last state
    saved with :meth:`JobQueue.checkpoint` (``None`` if none), ``caller`` the
    identity record stored at :meth:`JobQueue.enqueue`, ``tokens`` its
    encrypted refresh tokens (or ``None``).
    """

    action_id: str
    attempts: int
    checkpoint: Any
    caller: Mapping[str, Any]
    tokens: bytes | None


@dataclass(slots=True, frozen=True)
class Beat:
    """A renewed lease: ``stop`` is True once cancellation was asked for."""

    action_id: str
    stop: bool


class JobQueue(abc.ABC):
    """Background jobs of one provider (one store namespace).

    Every method is one atomic statement (or transaction) of the store, so
    any number of processes and hosts sharing the store may call them at once.
    """

    @abc.abstractmethod
    def enqueue(
        self,
        action_id: str,
        now: float,
        deadline: float | None,
        caller: Mapping[str, Any],
        tokens: bytes | None = None,
    ) -> None:
        """Add a job for ``action_id``: claimable at once, once its action is
        stored ACTIVE. ``deadline`` (a timestamp or ``None``) is when it must
        have ended; ``caller`` an identity record (no tokens); ``tokens`` the
        encrypted refresh tokens of the caller, if any."""

    @abc.abstractmethod
    def claim(self, owner: str, now: float, lease: float, limit: int) -> list[Claimed]:
        """Take at most ``limit`` jobs whose lease ran out (or never began)
        and whose action is ACTIVE, for ``owner`` until ``now + lease``."""

    @abc.abstractmethod
    def heartbeat(
        self, owner: str, action_ids: Collection[str], now: float, lease: float
    ) -> list[Beat]:
        """Renew ``owner``'s leases on ``action_ids``; the jobs missing from
        the answer are no longer ``owner``'s (taken over or deleted)."""

    @abc.abstractmethod
    def hand_back(self, owner: str, action_ids: Collection[str]) -> None:
        """Hand jobs back at once (shutting down): claimable again now, and
        the claim does not count as an attempt."""

    @abc.abstractmethod
    def interrupt(self, owner: str, action_ids: Collection[str]) -> None:
        """Hand back jobs whose holder is stopping while they run (SIGTERM):
        claimable again at once, and, unlike :meth:`hand_back`, the claim
        counts as an attempt, as a take-over after a crash does — so a job
        that ends every process running it stays bounded."""

    @abc.abstractmethod
    def requeue_for(
        self, action_id: str, caller: Mapping[str, Any], tokens: bytes | None
    ) -> bool:
        """Hand a waiting job (its action INACTIVE) to a new caller: claimable
        at once once its action is ACTIVE again, with this ``caller`` record
        and ``tokens`` (replacing the old ones); its checkpoint stays. False
        if there is no such job."""

    @abc.abstractmethod
    def delete(self, action_id: str) -> None:
        """Delete the job (it ended, or its action is gone)."""

    @abc.abstractmethod
    def request_cancel(self, action_id: str) -> None:
        """Ask the job to stop; its holder learns it at the next heartbeat."""

    @abc.abstractmethod
    def checkpoint(self, owner: str, action_id: str, state: bytes) -> bool:
        """Save ``state`` (JSON bytes) for a take-over; False if ``owner`` no
        longer holds the job."""

    @abc.abstractmethod
    def save_tokens(self, owner: str, action_id: str, tokens: bytes) -> bool:
        """Keep ``tokens`` (encrypted refresh tokens) with the job; False if
        ``owner`` no longer holds it. They go when the row goes."""

    @abc.abstractmethod
    def due(self, now: float) -> list[str]:
        """Jobs (queued or running) whose deadline passed by ``now`` and whose
        action is still ACTIVE or INACTIVE."""

    @abc.abstractmethod
    def sweep(self, now: float, grace: float) -> int:
        """Delete rows not held by a live lease whose action ended or was never
        stored (enqueued more than ``grace`` seconds ago); return how many."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the queue holds; the default holds nothing."""
