"""The compiled job of a provider: what run, cancel and the runner share."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aptools.auth import Caller
from aptools.forks import PerProcess
from aptools.jobs.callers import Reconnected, no_token
from aptools.jobs.fairshare import queued_behind
from aptools.jobs.handle import LOG_KEY
from aptools.jobs.observing import kept_trace
from aptools.jobs.runner import Runner
from aptools.jobs.settings import J, JobFunction, JobResult, JobSettings
from aptools.models import Action, LogPage, LogQuery, timestamp_of
from aptools.store.records import Stored

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

    from aptools.auth import Authenticator
    from aptools.store import Store
    from aptools.store.jobqueue import JobQueue
    from aptools.telemetry import Telemetry

__all__ = [
    "J",
    "JobEngine",
    "JobFunction",
    "JobResult",
    "JobSettings",
    "no_token",
]


class JobEngine:
    """One provider's job in one process: enqueue, cancel, and its runner."""

    #: What records the job's spans and metrics (set by :meth:`observe`).
    telemetry: Telemetry | None = None
    #: The job metrics (:meth:`Telemetry.job_metrics`), with telemetry.
    job_metrics: Any = None
    #: Jobs of one caller running at once, across processes (``None``: any).
    per_caller: int | None = None

    def __init__(
        self,
        fn: Callable[..., Any],
        settings: JobSettings,
        *,
        store: Store,
        queue: JobQueue,
        auth: Authenticator,
        max_deadline: float,
        is_async: bool,
        fernet: Fernet | None = None,
    ) -> None:
        self.fn = fn
        self.settings = settings
        self.store = store
        self.queue = queue
        self.auth = auth
        self.max_deadline = max_deadline
        self.is_async = is_async
        self.fernet = fernet
        self._callers: dict[str, Caller] = {}
        self._lock = threading.Lock()
        self._runner: PerProcess[Runner] = PerProcess(self._start_runner)

    # -- called by the operations -------------------------------------------------

    def admit(self, action: Action, caller: Caller, now: float) -> None:
        """Enqueue ``action``'s job (before its first state is stored)."""
        self._keep(action.action_id, caller)
        deadline = self._deadline(action, now)
        if self.per_caller is not None:
            ahead = self.queue.ahead(caller.identity_id)
            queued_behind(action, ahead, self.per_caller)
        self.queue.enqueue(action.action_id, deadline, _record(caller))
        if self.telemetry is not None:
            kept_trace(self, action.action_id)

    def observe(self, telemetry: Telemetry) -> None:
        """Record the job's spans and metrics with ``telemetry``."""
        self.telemetry = telemetry
        self.job_metrics = telemetry.job_metrics(self.queue)

    def resume(self, action: Action, caller: Caller) -> Stored | None:
        """Resume ``action``'s waiting job, as one compare-and-set
        (:meth:`JobQueue.requeue_for`): if the action is still stored INACTIVE,
        store ``action`` (going on, ACTIVE) and hand its job to the resuming
        ``caller``, from its checkpoint. With kept tokens, the caller's access
        token is kept (encrypted) with the job, so that any process can act
        for it. Returns what was stored, or ``None`` when another resume won,
        the action ended, or its job's deadline passed."""
        record = _record(caller)
        sealed = None
        if self.fernet is not None and caller._token:
            from aptools.jobs.tokens import seal

            sealed = seal(self.fernet, {}, caller._token)
        deadline = self._deadline(action, timestamp_of(action.start_time))
        self._keep(action.action_id, caller)
        stored = self.queue.requeue_for(
            action.action_id, Stored.of(action), record, sealed, deadline
        )
        if stored is None:
            self.forget(action.action_id)
        return stored

    def now(self) -> float:
        """The queue's clock (:meth:`JobQueue.now`): deadlines are on it."""
        return self.queue.now()

    def _deadline(self, action: Action, start: float) -> float:
        deadline = start + self.max_deadline
        if action.deadline is not None:
            deadline = min(deadline, timestamp_of(action.deadline))
        return deadline

    def _keep(self, action_id: str, caller: Caller) -> None:
        with self._lock:
            # Kept for this process's runner: the job started here can act as
            # the caller with the token of the request.
            if len(self._callers) > 10_000:
                self._callers.clear()
            self._callers[action_id] = caller

    def wake(self) -> None:
        """The action was stored: start (if need be) and wake this process's runner."""
        self.runner().wake()

    def cancel(self, action_id: str) -> None:
        """Tell the job to stop, wherever it runs."""
        self.queue.request_cancel(action_id)
        runner = self._runner.current()
        if runner is not None:
            runner.stop_job(action_id)

    # -- the runner's side --------------------------------------------------------

    @property
    def started_runner(self) -> Runner | None:
        """This process's runner if it was started (and not stopped), else None."""
        return self._runner.current()

    def runner(self) -> Runner:
        """This process's runner, started on first use (after a fork, anew)."""
        return self._runner.get()

    def _start_runner(self) -> Runner:

        with self._lock:
            self._callers = {}  # a forked child's are its parent's requests
        runner = Runner(self, owner=_owner())
        runner.start()
        return runner

    def caller_for(
        self,
        action_id: str,
        record: Mapping[str, Any],
        sealed: bytes | None,
        save: Callable[[bytes], Any],
    ) -> Caller:
        """The caller a job acts as: the request's own when the job started
        in this process, else one rebuilt from its ``record`` (and, with
        ``keep_tokens``, from its ``sealed`` refresh tokens)."""
        with self._lock:
            live = self._callers.pop(action_id, None)
        if live is not None and self.fernet is None:
            return live
        identity: dict[str, Any] = {
            "identity_id": record["identity_id"],
            "identities": frozenset(record["identities"]),
            "username": record.get("username"),
            "client_id": record.get("client_id"),
            "scopes": frozenset(record.get("scopes", ())),
            # The request's token, while the job runs where it was accepted.
            "token": "" if live is None else live._token,
            "auth": self.auth,
        }
        if self.fernet is None:
            return Reconnected(**identity)
        from aptools.jobs.tokens import TokenCaller

        return TokenCaller(fernet=self.fernet, sealed=sealed, save=save, **identity)

    def forget(self, action_id: str) -> None:
        with self._lock:
            self._callers.pop(action_id, None)

    def shutdown(self) -> None:
        """Hand this process's running jobs back and stop its runner."""
        runner = self._runner.discard()
        if runner is not None:
            runner.stop()


def job_log(action: Action, caller: Caller, query: LogQuery) -> LogPage:
    """The log handler of a provider with a job: the entries it reported."""
    entries = list(action.state.get(LOG_KEY, ()))
    if query.reverse_order:
        entries.reverse()
    start = int(query.marker) if query.marker and query.marker.isdigit() else 0
    page = entries[start : start + query.limit]
    more = start + query.limit < len(entries)
    return LogPage(
        entries=page,
        has_next_page=more,
        marker=str(start + query.limit) if more else None,
    )


def _record(caller: Caller) -> dict[str, Any]:
    """What a job keeps of its caller (no token)."""
    return {
        "identity_id": caller.identity_id,
        "identities": sorted(caller.identities),
        "username": caller.username,
        "client_id": caller.client_id,
        "scopes": sorted(caller.scopes),
    }


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{time.monotonic_ns():x}"
