"""The signatures of handlers, for type checkers.

The decorators of :class:`~aptools.Provider` return the function unchanged
(typed with a bound ``TypeVar``), so a type checker sees the author's own
signature — and checks it against the protocol of its operation::

    @provider.run
    def run(request: ActionRequest, caller: Caller) -> dict[str, Any]: ...

    @provider.log            # mypy: incompatible type, needs (action, caller, query)
    def log(action: Action, caller: Caller) -> list[LogEntry]: ...

Every handler may be ``def`` or ``async def``: each protocol's return type is
the result or an awaitable of it. Parameters are positional: their names are
the author's. The same rule is checked at run time, when a handler is
registered (:func:`check_signature`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Protocol, TypeAlias, TypeVar

from aptools.auth import Caller
from aptools.models import (
    Action,
    ActionRequest,
    ActionStatus,
    EnumerateQuery,
    LogEntry,
    LogPage,
    LogQuery,
)

__all__ = [
    "CancelHandler",
    "EnumerateHandler",
    "LogHandler",
    "ReleaseHandler",
    "ResumeHandler",
    "RunHandler",
    "RunResult",
    "StatusHandler",
    "StatusResult",
    "check_signature",
    "is_async",
]

#: What run answers: a dict (the details of a SUCCEEDED action), an
#: :class:`ActionStatus` or the :class:`Action` itself. (Or it raises
#: :class:`~aptools.ActionFailed`.)
RunResult: TypeAlias = Mapping[str, Any] | ActionStatus | Action
#: What status, cancel and resume answer: as run, or ``None`` (no change).
StatusResult: TypeAlias = RunResult | None
LogResult: TypeAlias = LogPage | Iterable[LogEntry | Mapping[str, Any]]


class RunHandler(Protocol):
    """``run(request, caller)``: start the work of an action."""

    def __call__(
        self, request: ActionRequest, caller: Caller, /
    ) -> RunResult | Awaitable[RunResult]: ...


class StatusHandler(Protocol):
    """``status(action, caller)``: bring an unfinished action up to date."""

    def __call__(
        self, action: Action, caller: Caller, /
    ) -> StatusResult | Awaitable[StatusResult]: ...


class CancelHandler(Protocol):
    """``cancel(action, caller)``: ask an unfinished action to stop."""

    def __call__(
        self, action: Action, caller: Caller, /
    ) -> StatusResult | Awaitable[StatusResult]: ...


class ResumeHandler(Protocol):
    """``resume(action, caller)``: resume an INACTIVE action."""

    def __call__(
        self, action: Action, caller: Caller, /
    ) -> StatusResult | Awaitable[StatusResult]: ...


class ReleaseHandler(Protocol):
    """``release(action, caller)``: clean up before a finished action is
    forgotten; its result is ignored."""

    def __call__(self, action: Action, caller: Caller, /) -> object: ...


class LogHandler(Protocol):
    """``log(action, caller, query)``: a page of the action's log."""

    def __call__(
        self, action: Action, caller: Caller, query: LogQuery, /
    ) -> LogResult | Awaitable[LogResult]: ...


class EnumerateHandler(Protocol):
    """``enumerate(query, caller)``: refine the stored actions listed."""

    def __call__(
        self, query: EnumerateQuery, caller: Caller, /
    ) -> Iterable[Action] | Awaitable[Iterable[Action]]: ...


RunF = TypeVar("RunF", bound=RunHandler)
StatusF = TypeVar("StatusF", bound=StatusHandler)
CancelF = TypeVar("CancelF", bound=CancelHandler)
ResumeF = TypeVar("ResumeF", bound=ResumeHandler)
ReleaseF = TypeVar("ReleaseF", bound=ReleaseHandler)
LogF = TypeVar("LogF", bound=LogHandler)
EnumerateF = TypeVar("EnumerateF", bound=EnumerateHandler)

#: The positional parameters aptools passes to each handler, by operation.
PARAMETERS: Final[Mapping[str, tuple[str, ...]]] = {
    "run": ("request", "caller"),
    "status": ("action", "caller"),
    "cancel": ("action", "caller"),
    "release": ("action", "caller"),
    "resume": ("action", "caller"),
    "log": ("action", "caller", "query"),
    "enumerate": ("query", "caller"),
    "job": ("action", "caller", "job"),
}


def check_signature(name: str, fn: Callable[..., Any]) -> str | None:
    """Why ``fn`` cannot be the ``name`` handler, or ``None`` if it can.

    aptools calls it with the positional arguments of :data:`PARAMETERS`; a
    function whose signature cannot be read (some built-ins) is taken on
    trust.
    """
    expected = PARAMETERS[name]
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*expected)
    except TypeError as exc:
        return (
            f"the {name} handler {_name(fn)}{signature} cannot be called as "
            f"{name}({', '.join(expected)}): {exc}"
        )
    return None


def where(fn: Callable[..., Any]) -> str:
    """A handler's name and, for a function, its file and line."""
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", repr(fn))
    return f"{name} at {code.co_filename}:{code.co_firstlineno}" if code else name


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or type(fn).__name__)


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` makes a coroutine (an ``async def``, or an object
    whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )
