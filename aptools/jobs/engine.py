"""The compiled job of a provider: what run, cancel and the runner share."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from aptools.auth import Caller
from aptools.errors import ConsentRequired
from aptools.forks import PerProcess
from aptools.jobs.handle import LOG_KEY, Job
from aptools.models import Action, ActionStatus, LogPage, LogQuery, timestamp_of

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

    from aptools.auth import Authenticator
    from aptools.jobs.queue import JobQueue
    from aptools.jobs.runner import Runner
    from aptools.store import Store

__all__ = ["JobEngine", "JobFunction", "JobResult", "JobSettings"]

#: What a job function returns: the details of a SUCCEEDED action, or a
#: terminal (or INACTIVE) :class:`ActionStatus`.
JobResult: TypeAlias = Mapping[str, Any] | ActionStatus | None


class JobFunction(Protocol):
    """A job: ``def work(action, caller, job)`` or ``async def``."""

    def __call__(
        self, action: Action, caller: Caller, job: Job, /
    ) -> JobResult | Awaitable[JobResult]: ...


J = TypeVar(
    "J",
    bound=Callable[[Action, Caller, Job], JobResult | Awaitable[JobResult]],
)


@dataclass(slots=True, frozen=True)
class JobSettings:
    """How a provider's job runs.

    ``lease`` (seconds): how long a claim lasts without a heartbeat (renewed
    every third of it); a job whose process died is taken over after at most
    this long. ``resumable``: a take-over starts the job again from its last
    checkpoint; otherwise the action ends FAILED ("Interrupted").
    ``max_jobs``: jobs running at once per process. ``poll_interval``
    (seconds): how often a process looks for jobs others enqueued.
    ``keep_tokens``: keep the caller's dependent refresh tokens, encrypted,
    so that ``caller.authorizer(scope)`` works for the whole job.
    """

    resumable: bool = False
    lease: float = 30.0
    max_jobs: int = 4
    poll_interval: float = 1.0
    keep_tokens: bool = False


def no_token(scope: str) -> ConsentRequired:
    """What a job that holds no token of its caller's for ``scope`` raises
    (taken over from a process that died, or resumed elsewhere, without a
    kept token): the caller must act again — consent, then resume."""
    return ConsentRequired(
        "The provider holds no token of yours for a scope it needs; "
        "consent to it and resume the action.",
        required_scopes=[scope],
    )


class _Reconnected(Caller):
    """The caller of a job taken over from another process: no token."""

    __slots__ = ()

    def dependent_token(self, scope: str) -> dict[str, Any]:
        raise no_token(scope)


class JobEngine:
    """One provider's job in one process: enqueue, cancel, and its runner."""

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
        self.queue.enqueue(action.action_id, now, deadline, _record(caller))

    def resume(self, action: Action, caller: Caller, now: float) -> None:
        """Hand ``action``'s waiting job to the resuming ``caller`` (before
        the action is stored ACTIVE again): it goes on from its checkpoint,
        acting as ``caller``. With kept tokens, the caller's access token is
        kept (encrypted) with the job, so that any process can act for it."""
        self._keep(action.action_id, caller)
        record = _record(caller)
        sealed = None
        if self.fernet is not None and caller._token:
            from aptools.jobs.tokens import seal

            sealed = seal(self.fernet, {}, caller._token)
        if not self.queue.resume(action.action_id, record, sealed):
            deadline = self._deadline(action, timestamp_of(action.start_time))
            self.queue.enqueue(action.action_id, now, deadline, record, sealed)

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
        from aptools.jobs.runner import Runner

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
            return _Reconnected(**identity)
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
