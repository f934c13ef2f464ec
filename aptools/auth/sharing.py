"""One answer shared by every request waiting for it: the futures of
introspections under way, settled once, read by many."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, InvalidStateError

from aptools.auth.caller import Caller
from aptools.errors import AuthServiceError, AuthServiceUnavailable, Unauthorized


def answer(future: Future[Caller]) -> Caller:
    """The caller ``future`` holds, or a fresh copy of its error (one error
    object raised by many requests at once would gather their tracebacks)."""
    error = future.exception(timeout=0)
    if error is None:
        return future.result(timeout=0)
    if isinstance(error, AuthServiceUnavailable):
        raise AuthServiceUnavailable(error.description, retry_after=error.retry_after)
    if isinstance(error, Unauthorized | AuthServiceError):
        raise type(error)(error.description)
    raise error


def retrieved(waited: asyncio.Future[Caller]) -> None:
    if not waited.cancelled():
        waited.exception()  # read: no "exception was never retrieved"


def settle(future: Future[Caller], outcome: Caller | BaseException) -> None:
    """Answer ``future`` unless its waiters gave up on it already."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass
