"""Riding out a store outage: a job's writes wait for the store while its
lease holds.

A database restart of a few seconds makes every statement raise
:class:`~aptools.StoreUnavailable` meanwhile. A job's writes (its progress,
its checkpoints, its outcome) and the runner's heartbeats try again with the
shared backoff (:func:`aptools.backoff.pauses`) for as long as the job's
lease surely holds; only then is the error raised, and the runner hands the
job to whoever claims it after its lease (from its checkpoint) — a store's
fault never ends an action FAILED.

>>> stored = ride_out(lambda: store.update(...), until=lambda: held_until)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, TypeVar

from aptools.backoff import pauses
from aptools.errors import StoreUnavailable

__all__ = ["FIRST_PAUSE", "LONGEST_PAUSE", "MARGIN", "ride_out"]

T = TypeVar("T")

#: The first and longest pauses between tries (seconds).
FIRST_PAUSE: Final = 0.05
LONGEST_PAUSE: Final = 2.0
#: Stop trying this long (seconds) before the lease runs out, so that the
#: last try cannot write after another process could have taken the job.
MARGIN: Final = 1.0


def ride_out(call: Callable[[], T], until: Callable[[], float]) -> T:
    """``call()``, tried again while it raises :class:`StoreUnavailable` and
    ``until()`` (a :func:`time.monotonic` instant: when the lease may run out)
    is more than :data:`MARGIN` seconds away. Raises the last
    :class:`StoreUnavailable` after that; any other error at once."""
    waits = pauses(FIRST_PAUSE, LONGEST_PAUSE)
    while True:
        try:
            return call()
        except StoreUnavailable:
            left = until() - MARGIN - time.monotonic()
            if left <= 0:
                raise
            time.sleep(min(next(waits), left))
