"""The job queue of a :class:`~aptools.MemoryStore`: a dict beside its actions.

One lock, the store's, guards the actions and the jobs, so a job's row and
its action change together (resume, a fenced progress write, the outcome).
The clock is this host's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from aptools.store.jobqueue import Beat, Claimed, Fence, JobQueue, JobRow, lost
from aptools.store.records import Stored
from aptools.vocabulary import ACTIVE, INACTIVE, TERMINAL

__all__ = ["MemoryJobQueue"]


@dataclass(slots=True)
class _Job:
    enqueued_at: float
    deadline: float | None
    caller: Mapping[str, Any]
    tokens: bytes | None
    owner: str | None = None
    lease_until: float = 0.0
    attempts: int = 0
    claims: int = 0
    cancel: bool = False
    checkpoint: bytes | None = None
    traceparent: str | None = None


class Actions(Protocol):
    """What the queue uses of its :class:`~aptools.MemoryStore` (a view)."""

    _lock: threading.Lock

    def get(self, action_id: str, now: float) -> Stored | None: ...

    def _write(
        self,
        action_id: str,
        stored: Stored,
        expires_at: float | None,
        now: float,
        only_if: str | None = None,
    ) -> Stored | None: ...


class MemoryJobQueue(JobQueue):
    """Jobs of one process; they end with it, like the store's actions."""

    def __init__(self, store: Actions) -> None:
        self._store = store
        self._lock = store._lock
        self._jobs: dict[str, _Job] = {}

    def now(self) -> float:
        return time.time()

    def _status(self, action_id: str, now: float) -> str | None:
        stored = self._store.get(action_id, now)
        return None if stored is None else stored.status

    def _held(self, fence: Fence) -> _Job | None:
        job = self._jobs.get(fence.action_id)
        if job is None or job.owner != fence.owner or job.claims != fence.claim:
            return None
        return job

    def enqueue(
        self,
        action_id: str,
        deadline: float | None,
        caller: Mapping[str, Any],
        tokens: bytes | None = None,
    ) -> None:
        with self._lock:
            self._jobs[action_id] = _Job(time.time(), deadline, dict(caller), tokens)

    def claim(self, owner: str, lease: float, limit: int) -> list[Claimed]:
        with self._lock:
            return self._claim(owner, lease, limit)

    def _claim(self, owner: str, lease: float, limit: int) -> list[Claimed]:
        taken: list[Claimed] = []
        now = time.time()
        for action_id, job in sorted(
            self._jobs.items(), key=lambda item: item[1].enqueued_at
        ):
            if len(taken) >= limit:
                break
            if job.lease_until >= now or job.cancel:
                continue
            if self._status(action_id, now) != ACTIVE:
                continue
            job.owner, job.lease_until = owner, now + lease
            job.attempts += 1
            job.claims += 1
            taken.append(
                Claimed(
                    action_id,
                    job.attempts,
                    None if job.checkpoint is None else orjson.loads(job.checkpoint),
                    job.caller,
                    job.tokens,
                    Fence(action_id, owner, job.claims),
                )
            )
        return taken

    def heartbeat(self, fences: Collection[Fence], lease: float) -> list[Beat]:
        beats = []
        now = time.time()
        with self._lock:
            for fence in fences:
                job = self._held(fence)
                if job is not None:
                    job.lease_until = now + lease
                    beats.append(Beat(fence.action_id, job.cancel))
        return beats

    def hand_back(self, fences: Collection[Fence]) -> None:
        with self._lock:
            for fence in fences:
                job = self._held(fence)
                if job is not None:
                    job.owner, job.lease_until = None, 0.0
                    job.attempts -= 1

    def interrupt(self, fences: Collection[Fence]) -> None:
        with self._lock:
            for fence in fences:
                job = self._held(fence)
                if job is not None:
                    job.owner, job.lease_until = None, 0.0

    def requeue_for(
        self,
        action_id: str,
        stored: Stored,
        caller: Mapping[str, Any],
        tokens: bytes | None,
        deadline: float | None,
    ) -> Stored | None:
        now = time.time()
        with self._lock:
            job = self._jobs.get(action_id)
            if job is not None and job.deadline is not None and job.deadline <= now:
                return None
            before = self._store.get(action_id, now)
            if before is None or before.status != INACTIVE:
                return None
            self._store._write(action_id, stored, None, now, only_if=INACTIVE)
            if job is None:
                job = self._jobs[action_id] = _Job(now, deadline, {}, None)
            job.owner, job.lease_until = None, 0.0
            job.claims += 1
            job.caller, job.tokens = dict(caller), tokens
            return stored

    def save(
        self, fence: Fence, stored: Stored, expires_at: float | None
    ) -> Stored | None:
        now = time.time()
        with self._lock:
            if self._held(fence) is None:
                raise lost(fence)
            return self._store._write(fence.action_id, stored, expires_at, now)

    def conclude(
        self, fence: Fence, stored: Stored, expires_at: float | None, keep: bool
    ) -> None:
        with self._lock:
            self._conclude(fence, stored, expires_at, keep)

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
        with self._lock:
            self._conclude(fence, stored, expires_at, keep)
            if per_caller is None:
                return self._claim(owner, lease, limit)
            return self._claim_fair(owner, lease, limit, per_caller)

    def _conclude(
        self, fence: Fence, stored: Stored, expires_at: float | None, keep: bool
    ) -> None:
        job = self._held(fence)
        if job is None:
            raise lost(fence)
        self._store._write(fence.action_id, stored, expires_at, time.time())
        if keep:
            job.owner, job.lease_until = None, 0.0
            job.attempts -= 1
        else:
            del self._jobs[fence.action_id]

    def delete(self, fence: Fence) -> bool:
        with self._lock:
            if self._held(fence) is None:
                return False
            del self._jobs[fence.action_id]
            return True

    def request_cancel(self, action_id: str) -> None:
        with self._lock:
            job = self._jobs.get(action_id)
            if job is not None:
                job.cancel = True

    def checkpoint(self, fence: Fence, state: bytes) -> None:
        with self._lock:
            job = self._held(fence)
            if job is None:
                raise lost(fence)
            job.checkpoint = state

    def save_tokens(self, fence: Fence, tokens: bytes) -> bool:
        with self._lock:
            job = self._held(fence)
            if job is None:
                return False
            if self._status(fence.action_id, time.time()) not in (ACTIVE, INACTIVE):
                return False  # ended: its tokens went with the change
            job.tokens = tokens
            return True

    def drop_tokens(self, action_id: str) -> None:
        """Forget the job's kept tokens (its action ended or went); the
        store calls it with the shared lock held, with the change."""
        job = self._jobs.get(action_id)
        if job is not None:
            job.tokens = None

    def kept_tokens(self) -> dict[str, bytes]:
        """Every job's kept tokens (sealed) by action id."""
        with self._lock:
            return {a: j.tokens for a, j in self._jobs.items() if j.tokens}

    def replace_tokens(self, action_id: str, old: bytes, new: bytes) -> bool:
        with self._lock:
            job = self._jobs.get(action_id)
            if job is None or job.tokens is None or job.tokens != old:
                return False
            if self._status(action_id, time.time()) in TERMINAL:
                return False  # ended: its tokens never come back
            job.tokens = new
            return True

    def due(self) -> list[str]:
        now = time.time()
        with self._lock:
            late = [
                action_id
                for action_id, job in self._jobs.items()
                if job.deadline is not None and job.deadline <= now
            ]
        return [a for a in late if self._status(a, now) in (ACTIVE, INACTIVE)]

    def sweep(self, grace: float) -> int:
        now = time.time()
        with self._lock:
            idle = [
                action_id
                for action_id, job in self._jobs.items()
                if job.lease_until < now and job.enqueued_at < now - grace
            ]
            gone = [a for a in idle if self._status(a, now) not in (ACTIVE, INACTIVE)]
            for action_id in gone:
                self._jobs.pop(action_id, None)
        return len(gone)

    def rows(self) -> list[JobRow]:
        with self._lock:
            return [
                JobRow(
                    action_id,
                    job.enqueued_at,
                    job.deadline,
                    dict(job.caller),
                    job.owner,
                    job.lease_until,
                    job.attempts,
                    job.claims,
                    job.cancel,
                )
                for action_id, job in sorted(
                    self._jobs.items(), key=lambda item: item[1].enqueued_at
                )
            ]

    def take(self, action_id: str, owner: str, lease: float) -> Fence | None:
        with self._lock:
            job = self._jobs.get(action_id)
            if job is None:
                return None
            job.owner, job.lease_until = owner, self.now() + lease
            job.claims += 1
            return Fence(action_id, owner, job.claims)

    def keep_trace(self, action_id: str, traceparent: str) -> None:
        with self._lock:
            job = self._jobs.get(action_id)
            if job is not None:
                job.traceparent = traceparent

    def origin(self, action_id: str) -> tuple[str | None, float] | None:
        with self._lock:
            job = self._jobs.get(action_id)
            return None if job is None else (job.traceparent, job.enqueued_at)

    def counts(self) -> dict[str, int]:
        now = time.time()
        found = {"queued": 0, "running": 0, "waiting": 0}
        with self._lock:
            for action_id, job in self._jobs.items():
                status = self._status(action_id, now)
                if status == INACTIVE:
                    found["waiting"] += 1
                elif status == ACTIVE:
                    held = job.owner is not None and job.lease_until >= now
                    found["running" if held else "queued"] += 1
        return found

    def claim_fair(
        self, owner: str, lease: float, limit: int, per_caller: int
    ) -> list[Claimed]:
        with self._lock:
            return self._claim_fair(owner, lease, limit, per_caller)

    def _claim_fair(
        self, owner: str, lease: float, limit: int, per_caller: int
    ) -> list[Claimed]:
        taken: list[Claimed] = []
        now = time.time()
        held: dict[Any, int] = {}
        for job in self._jobs.values():
            if job.owner is not None and job.lease_until >= now:
                who = job.caller.get("identity_id")
                held[who] = held.get(who, 0) + 1
        for action_id, job in sorted(
            self._jobs.items(), key=lambda i: (i[1].lease_until, i[1].enqueued_at)
        ):
            if len(taken) >= limit:
                break
            who = job.caller.get("identity_id")
            if job.lease_until >= now or job.cancel or held.get(who, 0) >= per_caller:
                continue
            if self._status(action_id, now) != ACTIVE:
                continue
            held[who] = held.get(who, 0) + 1
            job.owner, job.lease_until = owner, now + lease
            job.attempts += 1
            job.claims += 1
            checkpoint = (
                None if job.checkpoint is None else orjson.loads(job.checkpoint)
            )
            taken.append(
                Claimed(
                    action_id,
                    job.attempts,
                    checkpoint,
                    job.caller,
                    job.tokens,
                    Fence(action_id, owner, job.claims),
                )
            )
        return taken

    def ahead(self, identity_id: str) -> int:
        now = time.time()
        with self._lock:
            mine = [
                a
                for a, j in self._jobs.items()
                if j.caller.get("identity_id") == identity_id
            ]
            return sum(1 for a in mine if self._status(a, now) == ACTIVE)

    def ahead_of(self, action_id: str) -> int | None:
        now = time.time()
        with self._lock:
            me = self._jobs.get(action_id)
            if me is None or me.lease_until >= now or me.cancel:
                return None
            if self._status(action_id, now) != ACTIVE:
                return None
            who = me.caller.get("identity_id")
            place = (me.lease_until, me.enqueued_at)
            found = 0
            for other_id, job in self._jobs.items():
                if other_id == action_id or job.caller.get("identity_id") != who:
                    continue
                running = job.owner is not None and job.lease_until >= now
                before = (
                    job.lease_until < now
                    and not job.cancel
                    and (job.lease_until, job.enqueued_at) < place
                )
                if (running or before) and self._status(other_id, now) == ACTIVE:
                    found += 1
            return found
