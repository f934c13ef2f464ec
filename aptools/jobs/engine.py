"""The compiled job of a provider: what run, cancel and the runner share."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aptools.actions import consent_needed
from aptools.auth import Caller
from aptools.errors import (
    ActionFailed,
    ConsentRequired,
    ProviderMisconfigured,
    StoreUnavailable,
)
from aptools.forks import PerProcess
from aptools.jobs.callers import Reconnected, no_token
from aptools.jobs.fairshare import queued_behind
from aptools.jobs.handle import LOG_KEY
from aptools.jobs.observing import kept_trace
from aptools.jobs.runner import Runner
from aptools.jobs.settings import J, JobFunction, JobResult, JobSettings
from aptools.models import Action, LogPage, LogQuery, timestamp_of
from aptools.settings import ProviderConfigError
from aptools.store.records import Stored
from aptools.vocabulary import ACTIVE

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

    from aptools.auth import Authenticator
    from aptools.store import Store
    from aptools.store.jobqueue import JobQueue
    from aptools.telemetry import Telemetry

log = logging.getLogger("aptools.jobs")

#: Seconds between two log lines about runs refused for a missing key.
MISCONFIGURED_EVERY = 60.0

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
        keys: Callable[[], MultiFernet] | None = None,
        scopes: tuple[str, ...] = (),
    ) -> None:
        self.fn = fn
        self.settings = settings
        self.store = store
        self.queue = queue
        self.auth = auth
        self.max_deadline = max_deadline
        self.is_async = is_async
        #: The scopes the job acts under, as declared (granted at admission).
        self.scopes = scopes
        self._load_keys = keys
        self._keys: MultiFernet | None = None
        self._misconfigured_told = 0.0  # monotonic time the next log may be
        self._callers: dict[str, Caller] = {}
        self._lock = threading.Lock()
        self._runner: PerProcess[Runner] = PerProcess(self._start_runner)

    # -- called by the operations -------------------------------------------------

    @property
    def keys(self) -> MultiFernet | None:
        """The key ring that seals kept tokens (``None`` when the job keeps
        none), read from the settings on first use: only what accepts or
        runs jobs needs it. Raises :class:`~aptools.ProviderConfigError`
        when it is missing or malformed."""
        if self._load_keys is None:
            return None
        if self._keys is None:
            self._keys = self._load_keys()
        return self._keys

    def request_keys(self) -> MultiFernet | None:
        """:attr:`keys`, for a request that needs them (run, resume): a
        missing or malformed key is the host's configuration, so it raises
        :class:`~aptools.ProviderMisconfigured` (503), logged as one line
        at ERROR at most once a minute per process, not a 500 and a
        traceback per request."""
        try:
            return self.keys
        except ProviderConfigError as exc:
            now = time.monotonic()
            if now >= self._misconfigured_told:
                self._misconfigured_told = now + MISCONFIGURED_EVERY
                log.error("runs of jobs that keep tokens refused (503): %s", exc)
            raise ProviderMisconfigured() from None

    def kept_tokens(
        self, action: Action, caller: Caller, provider_scope: str
    ) -> bytes | None:
        """What the job's row keeps of ``caller``'s tokens (``None`` when the
        job keeps none): the refresh tokens of an offline dependent grant
        for the declared :attr:`scopes`, made now, while the request's
        token is fresh, and that token, sealed. Blocking (Globus Auth).

        A consent missing for a declared scope makes ``action`` INACTIVE
        with the consent request (it goes on at resume); outages raise
        :class:`~aptools.AuthServiceUnavailable` (503).
        """
        keys = self.keys
        if keys is None:
            return None
        from aptools.jobs.tokens import granted, seal

        refresh: dict[str, str] = {}
        if self.scopes and caller._token and action.status == ACTIVE:
            try:
                refresh = granted(caller._require_auth(), caller._token, self.scopes)
            except ConsentRequired as needed:
                consent_needed(action, needed, provider_scope, "job")
        return seal(keys, refresh, caller._token or None)

    def admit(
        self, action: Action, caller: Caller, now: float, tokens: bytes | None = None
    ) -> None:
        """Enqueue ``action``'s job (before its first state is stored), with
        its ``tokens`` (from :meth:`kept_tokens`) from this first write."""
        self._keep(action.action_id, caller)
        deadline = self._deadline(action, now)
        if self.per_caller is not None:
            ahead = self.queue.ahead(caller.identity_id)
            queued_behind(action, ahead, self.per_caller)
        self.queue.enqueue(action.action_id, deadline, _record(caller), tokens)
        if self.telemetry is not None:
            kept_trace(self, action.action_id)

    def observe(self, telemetry: Telemetry) -> None:
        """Record the job's spans and metrics with ``telemetry``."""
        self.telemetry = telemetry
        self.job_metrics = telemetry.job_metrics(self.queue)

    def resume(
        self, action: Action, caller: Caller, tokens: bytes | None = None
    ) -> Stored | None:
        """Resume ``action``'s waiting job, as one compare-and-set
        (:meth:`JobQueue.requeue_for`): if the action is still stored INACTIVE,
        store ``action`` (going on, ACTIVE) and hand its job to the resuming
        ``caller``, from its checkpoint, with ``tokens`` (from
        :meth:`kept_tokens`, replacing the old ones) so that any process can
        act for it. Returns what was stored, or ``None`` when another resume
        won, the action ended, or its job's deadline passed."""
        record = _record(caller)
        deadline = self._deadline(action, timestamp_of(action.start_time))
        self._keep(action.action_id, caller)
        stored = self.queue.requeue_for(
            action.action_id, Stored.of(action), record, tokens, deadline
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
        """The action was stored: start (if need be) and wake this process's
        runner, and tell those of other processes (:meth:`JobQueue.announce`)."""
        self.runner().wake()
        with contextlib.suppress(StoreUnavailable):
            # Only speed is at stake: they find the job at their next poll.
            self.queue.announce()

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
        self.keys  # noqa: B018 - a job that keeps tokens needs its key to run
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
        ``keep_tokens``, from its ``sealed`` tokens; ``save`` keeps new ones).

        Raises :class:`~aptools.ActionFailed` (code ``TokensUnreadable``,
        logged at ERROR with the action id) when no key opens ``sealed``.
        """
        with self._lock:
            live = self._callers.pop(action_id, None)
        keys = self.keys
        if live is not None and keys is None:
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
        if keys is None:
            return Reconnected(**identity)
        from aptools.jobs.tokens import (
            TokenCaller,
            TokensUnreadable,
            unreadable_details,
        )

        try:
            return TokenCaller(keys=keys, sealed=sealed, save=save, **identity)
        except TokensUnreadable as exc:
            # The operator's error (a key dropped too soon), never the
            # caller's: no consent request, a loud log line.
            log.error("job %s cannot start: %s", action_id, exc)
            raise ActionFailed(
                unreadable_details(), display_status="Provider misconfigured"
            ) from None

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
