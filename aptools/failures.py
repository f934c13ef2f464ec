"""How a background thread reports a task that fails again and again."""

from __future__ import annotations

import logging

from aptools.errors import StoreUnavailable

__all__ = ["Failures"]


class Failures:
    """How a background thread logs a task failing again and again: once,
    then once more when it works again.

    The first failure is logged with its traceback, or in one line when the
    store is unavailable (:class:`StoreUnavailable`, an outage the store
    already logged); the same failure again is not logged until a success.
    """

    def __init__(self, what: str, logger: logging.Logger) -> None:
        self.what = what
        self.log = logger
        self._failing: type[BaseException] | None = None

    def failed(self, exc: BaseException) -> None:
        if type(exc) is self._failing:
            return
        self._failing = type(exc)
        if isinstance(exc, StoreUnavailable):
            self.log.warning(
                "%s: the store is unavailable; trying again until it is back",
                self.what,
            )
        else:
            self.log.error(
                "%s failed; trying again later (said once until it works)",
                self.what,
                exc_info=(type(exc), exc, exc.__traceback__),
            )

    def succeeded(self) -> None:
        if self._failing is not None:
            self._failing = None
            self.log.warning("%s works again", self.what)
