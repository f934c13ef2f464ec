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
    """Call ``check()`` every ``every`` seconds (in this thread) until it
    returns something true, and return that first true value.

    What it waits for is whatever ``check`` looks at: a status answer, a
    store's row, a list a handler appends to. It waits for no thread,
    process or event itself, and an exception from ``check`` propagates at
    once. ``timeout`` (seconds, default 20) only bounds the wait: it is no
    timing; past it an ``AssertionError("never happened: " + what)`` is
    raised. Use it for what happens in the background (a job, a take-over),
    never as a sleep::

        def finished() -> Reply | None:
            reply = client.status(action_id, as_=alice)
            return reply if reply.json["status"] in ("SUCCEEDED", "FAILED") else None

        done = wait_for(finished, "the job ended")
        assert done.json["details"] == {"done": 10}
    """
    give_up = time.monotonic() + timeout
    while not (got := check()):
        if time.monotonic() > give_up:
            raise AssertionError(f"never happened: {what}")
        time.sleep(every)
    return got
