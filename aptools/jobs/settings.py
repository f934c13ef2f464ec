"""What a provider declares of its job: the function's shape and its settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

from aptools.auth import Caller
from aptools.jobs.handle import Job
from aptools.models import Action, ActionStatus

if TYPE_CHECKING:
    from aptools.auth import Authenticator
    from aptools.store import Store
    from aptools.store.jobqueue import JobQueue

__all__ = ["Engine", "J", "JobFunction", "JobResult", "JobSettings"]

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
    ``scopes``: the scopes the job acts under for its caller (scope strings),
    granted with refresh tokens when the run is accepted.
    ``max_attempts``: how many processes may end while running the job (a
    take-over after a crash or SIGKILL, a hand-back at SIGTERM) before its
    action ends FAILED; a job that is not resumable is never started twice.
    ``stop_timeout`` (seconds): at SIGTERM, how long a job that is not
    resumable may go on to its end before its action ends FAILED
    ("Interrupted"); keep it below the server's own graceful timeout
    (gunicorn's ``--graceful-timeout``, 30 s by default).
    """

    resumable: bool = False
    lease: float = 30.0
    max_jobs: int = 4
    poll_interval: float = 1.0
    keep_tokens: bool = False
    scopes: tuple[str, ...] = ()
    max_attempts: int = 10
    stop_timeout: float = 25.0


class Engine(Protocol):
    """What a runner reads of its provider's job (a
    :class:`~aptools.jobs.engine.JobEngine`)."""

    fn: Callable[..., Any]
    settings: JobSettings
    store: Store
    queue: JobQueue
    auth: Authenticator
    is_async: bool

    def caller_for(
        self,
        action_id: str,
        record: Mapping[str, Any],
        sealed: bytes | None,
        save: Callable[[bytes], Any],
    ) -> Caller: ...

    def forget(self, action_id: str) -> None: ...
