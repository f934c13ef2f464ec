"""Waiting in tests for what happens in the background (a job, a thread)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], what: str, timeout: float = 20.0, every: float = 0.02
) -> T:
    """Call ``check`` every ``every`` seconds until it answers something true,
    and return that. ``timeout`` (seconds) only bounds the wait: it is no
    timing; past it an ``AssertionError`` says what never happened.

    >>> done = wait_for(lambda: client.status(action_id).json()["status"]
    ...                 in ("SUCCEEDED", "FAILED"), "the job ended")
    """
    give_up = time.monotonic() + timeout
    while not (got := check()):
        if time.monotonic() > give_up:
            raise AssertionError(f"never happened: {what}")
        time.sleep(every)
    return got
