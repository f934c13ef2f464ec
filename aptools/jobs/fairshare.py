"""Fair share per caller: at most ``max_jobs_per_caller`` jobs of one
identity run at once, across every process and host of a provider.

The cap is kept by the claim itself (:meth:`JobQueue.claim_fair
<aptools.store.jobqueue.JobQueue.claim_fair>`, one atomic step per store),
so runners claiming at once never take a caller past it. A caller's actions
beyond it are accepted all the same (202) and wait their turn, ACTIVE, their
``display_status`` saying how many of the caller's jobs were ahead of them
when they were accepted; other callers' jobs are claimed past them.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Final

from aptools.errors import JobLost, StoreUnavailable
from aptools.settings import ProviderConfigError

if TYPE_CHECKING:
    from aptools.jobs.handle import Job
    from aptools.models import Action

__all__ = ["QUEUED", "RUNNING", "check_per_caller", "queued_behind", "started"]

#: How a job waiting for its caller's turn starts its display status.
QUEUED: Final = "Queued"
#: The display status a job that waited its turn gets when it starts.
RUNNING: Final = "Running"


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
        action.display_status = (
            f"{QUEUED}: {ahead} of your jobs ahead (at most {cap} at once)"
        )[:64]


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
