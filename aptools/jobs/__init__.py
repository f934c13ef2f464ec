"""Background jobs: long-running actions that survive restarts, workers and hosts.

Declare one with :meth:`aptools.Provider.job`; see :class:`Job` for what the
function can do while it runs, and :class:`JobQueue` for what a store offers.
"""

from aptools.jobs.handle import Job, JobCanceled, JobLost
from aptools.jobs.settings import JobFunction, JobResult, JobSettings
from aptools.store.jobqueue import Beat, Claimed, Fence, JobQueue

__all__ = [
    "Beat",
    "Claimed",
    "Fence",
    "Job",
    "JobCanceled",
    "JobFunction",
    "JobLost",
    "JobQueue",
    "JobResult",
    "JobSettings",
]
