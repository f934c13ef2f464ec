"""Fair share per caller: at most ``max_jobs_per_caller`` jobs of one
identity run at once, across every process and host of a provider.

The cap is kept by the claim itself (:meth:`JobQueue.claim_fair
<aptools.store.jobqueue.JobQueue.claim_fair>`, one atomic step per store),
so runners claiming at once never take a caller past it. A caller's actions
beyond it are accepted all the same (202) and wait their turn, ACTIVE, their
``display_status`` saying how many of the caller's jobs are ahead of them;
other callers' jobs are claimed past them.

The position stays true without a write per job each time one of the
caller's jobs ends: the stored status says "Queued" with the count at
acceptance, and a status request for such an action (and enumerate, for
each such action it lists) reads the current count
from the queue (:meth:`JobQueue.ahead_of
<aptools.store.jobqueue.JobQueue.ahead_of>`, one read, on the store every
process and host shares) and answers with it (:func:`current`). Once the job
is claimed the answer says "Running", and the job's first write of its
status replaces the stored "Queued" (:func:`started`).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from aptools.errors import JobLost, StoreUnavailable
from aptools.settings import ProviderConfigError
from aptools.vocabulary import ACTIVE

if TYPE_CHECKING:
    from aptools.jobs.handle import Job
    from aptools.models import Action
    from aptools.store.jobqueue import JobQueue
    from aptools.store.records import Stored

__all__ = [
    "QUEUED",
    "RUNNING",
    "FairEngine",
    "check_per_caller",
    "current",
    "queued_behind",
    "started",
    "waits",
]

#: How a job waiting for its caller's turn starts its display status.
QUEUED: Final = "Queued"
#: The display status a job that waited its turn gets when it starts.
RUNNING: Final = "Running"
# How the stored status document of a job waiting its turn says so (both;
# a job's own display status is never read as such).
_MARK: Final = b'"display_status":"' + QUEUED.encode() + b": "
_AHEAD: Final = b" of your jobs ahead (at most "


class FairEngine(Protocol):
    """What fair share reads of a provider's
    :class:`~aptools.jobs.engine.JobEngine`."""

    per_caller: int | None
    queue: JobQueue


def check_per_caller(value: int | None) -> int | None:
    """``value`` if it is ``None`` (no cap) or a positive whole number, else
    :class:`~aptools.ProviderConfigError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProviderConfigError(
            f"max_jobs_per_caller must be a positive whole number or None: {value!r}"
        )
    return value


def queued_behind(action: Action, ahead: int, cap: int) -> None:
    """Say in ``action``'s display status that it waits its turn, when
    ``ahead`` (its caller's queued or running jobs) reaches ``cap``."""
    if ahead >= cap:
        action.display_status = _queued(ahead, cap)


def _queued(ahead: int, cap: int) -> str:
    return f"{QUEUED}: {ahead} of your jobs ahead (at most {cap} at once)"[:64]


def waits(engine: FairEngine | None, stored: Stored) -> bool:
    """Whether ``stored`` is an ACTIVE action whose status says it waits its
    turn, of a provider with a cap per caller: :func:`current` tells how
    far it is now. No store access."""
    return (
        engine is not None
        and engine.per_caller is not None
        and stored.status == ACTIVE
        and _MARK in stored.public
        and _AHEAD in stored.public
    )


def current(engine: FairEngine, stored: Stored) -> Stored:
    """``stored`` (an action that :func:`waits`) with the display status of
    its answer made current: how many of its caller's jobs are ahead of it
    now (:meth:`JobQueue.ahead_of <aptools.store.jobqueue.JobQueue.ahead_of>`),
    or :data:`RUNNING` once its job was claimed. Nothing is written.
    Blocking (one store read); raises what the store raises
    (:class:`~aptools.StoreUnavailable`). A queue that cannot tell leaves
    ``stored`` as it is."""
    cap = engine.per_caller
    if cap is None:
        return stored
    try:
        ahead = engine.queue.ahead_of(stored.action_id)
    except NotImplementedError:
        return stored
    doc = orjson.loads(stored.public)
    doc["display_status"] = RUNNING if ahead is None else _queued(ahead, cap)
    return stored._replace(public=orjson.dumps(doc))


def started(engine: Any, job: Job) -> None:
    """A job that waited its turn starts: its display status says so (one
    write, only for such a job). A refused or failed write is left to the
    job's own next write to find."""
    if getattr(engine, "per_caller", None) is None:
        return
    shown = job.action.display_status
    if shown is not None and shown.startswith(f"{QUEUED}:"):
        with contextlib.suppress(JobLost, StoreUnavailable):
            job.progress(display_status=RUNNING)


def finished(engine: Any, action: Action) -> None:
    """At a job's end, before its outcome is applied: the framework's own
    display status of a job that waited its turn ("Queued: N of your jobs
    ahead ..." or :data:`RUNNING`) is cleared, so that an ended action never
    says it is queued or running. A job's own status (anything else, or a
    status its outcome gives) stays."""
    if getattr(engine, "per_caller", None) is None:
        return
    shown = action.display_status
    if shown == RUNNING or (
        shown is not None
        and shown.startswith(f"{QUEUED}: ")
        and _AHEAD.decode() in shown
    ):
        action.display_status = None
