"""The job queue of a :class:`~aptools.MemoryStore`: a dict beside its actions."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from aptools.store.base import Store
from aptools.store.jobqueue import Beat, Claimed, JobQueue
from aptools.vocabulary import ACTIVE, INACTIVE

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
    cancel: bool = False
    checkpoint: bytes | None = None


class MemoryJobQueue(JobQueue):
    """Jobs of one process; they end with it, like the store's actions."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def _status(self, action_id: str) -> str | None:
        stored = self._store.get(action_id, time.time())
        return None if stored is None else stored.status

    def enqueue(
        self,
        action_id: str,
        now: float,
        deadline: float | None,
        caller: Mapping[str, Any],
        tokens: bytes | None = None,
    ) -> None:
        with self._lock:
            self._jobs[action_id] = _Job(now, deadline, dict(caller), tokens)

    def claim(self, owner: str, now: float, lease: float, limit: int) -> list[Claimed]:
        taken: list[Claimed] = []
        with self._lock:
            for action_id, job in sorted(
                self._jobs.items(), key=lambda item: item[1].enqueued_at
            ):
                if len(taken) >= limit:
                    break
                if job.lease_until >= now or job.cancel:
                    continue
                if self._status(action_id) != ACTIVE:
                    continue
                job.owner, job.lease_until = owner, now + lease
                job.attempts += 1
                taken.append(
                    Claimed(
                        action_id,
                        job.attempts,
                        None
                        if job.checkpoint is None
                        else orjson.loads(job.checkpoint),
                        job.caller,
                        job.tokens,
                    )
                )
        return taken

    def heartbeat(
        self, owner: str, action_ids: Collection[str], now: float, lease: float
    ) -> list[Beat]:
        beats = []
        with self._lock:
            for action_id in action_ids:
                job = self._jobs.get(action_id)
                if job is None or job.owner != owner:
                    continue
                job.lease_until = now + lease
                beats.append(Beat(action_id, job.cancel))
        return beats

    def hand_back(self, owner: str, action_ids: Collection[str]) -> None:
        with self._lock:
            for action_id in action_ids:
                job = self._jobs.get(action_id)
                if job is not None and job.owner == owner:
                    job.owner, job.lease_until = None, 0.0
                    job.attempts -= 1

    def interrupt(self, owner: str, action_ids: Collection[str]) -> None:
        with self._lock:
            for action_id in action_ids:
                job = self._jobs.get(action_id)
                if job is not None and job.owner == owner:
                    job.owner, job.lease_until = None, 0.0

    def requeue_for(
        self, action_id: str, caller: Mapping[str, Any], tokens: bytes | None
    ) -> bool:
        with self._lock:
            job = self._jobs.get(action_id)
            if job is None:
                return False
            job.owner, job.lease_until = None, 0.0
            job.caller, job.tokens = dict(caller), tokens
            return True

    def delete(self, action_id: str) -> None:
        with self._lock:
            self._jobs.pop(action_id, None)

    def request_cancel(self, action_id: str) -> None:
        with self._lock:
            job = self._jobs.get(action_id)
            if job is not None:
                job.cancel = True

    def checkpoint(self, owner: str, action_id: str, state: bytes) -> bool:
        with self._lock:
            job = self._jobs.get(action_id)
            if job is None or job.owner != owner:
                return False
            job.checkpoint = state
            return True

    def save_tokens(self, owner: str, action_id: str, tokens: bytes) -> bool:
        with self._lock:
            job = self._jobs.get(action_id)
            if job is None or job.owner != owner:
                return False
            job.tokens = tokens
            return True

    def due(self, now: float) -> list[str]:
        with self._lock:
            late = [
                action_id
                for action_id, job in self._jobs.items()
                if job.deadline is not None and job.deadline <= now
            ]
        return [a for a in late if self._status(a) in (ACTIVE, INACTIVE)]

    def sweep(self, now: float, grace: float) -> int:
        with self._lock:
            idle = [
                action_id
                for action_id, job in self._jobs.items()
                if job.lease_until < now and job.enqueued_at < now - grace
            ]
        gone = [a for a in idle if self._status(a) not in (ACTIVE, INACTIVE)]
        with self._lock:
            for action_id in gone:
                self._jobs.pop(action_id, None)
        return len(gone)
