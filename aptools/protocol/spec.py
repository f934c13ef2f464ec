"""The compiled provider: :class:`Spec` and its parts.

A :class:`~aptools.Provider` compiles to one :class:`Spec`: everything a
request needs that could be worked out before the first request. Both faces
read it; nothing in it changes while requests are served.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from aptools.auth import Authenticator
from aptools.execution import Execution
from aptools.protocol.effects import StoreCall
from aptools.protocol.handlers import Handler
from aptools.store import Store
from aptools.vocabulary import ALL_AUTHENTICATED, GROUP_URN

if TYPE_CHECKING:
    from aptools.jobs.engine import JobEngine
    from aptools.page import ProviderPage
    from aptools.telemetry import Telemetry

Request = Any  # falcon.Request or falcon.asgi.Request: the same reading API


Reply = tuple[int, bytes]


@dataclass(slots=True, frozen=True)
class Access:
    """A provider-level principal list, split for quick checks."""

    everyone: bool
    identities: frozenset[str]
    groups: frozenset[str]
    #: Any authenticated caller is on the list (``all_authenticated_users``).
    authenticated: bool = False

    @classmethod
    def of(cls, principals: Iterable[str], everyone_word: str) -> Access:
        items = frozenset(principals)
        return cls(
            everyone=everyone_word in items,
            identities=frozenset(p for p in items if not p.startswith(GROUP_URN)),
            groups=frozenset(p for p in items if p.startswith(GROUP_URN)),
            authenticated=ALL_AUTHENTICATED in items,
        )


class Verdict:
    """The readiness route's last answer, kept ``ttl`` seconds so that
    probes from many load balancers cost one store check per process."""

    def __init__(self, ttl: float = 2.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._reply: Reply | None = None
        self._until = 0.0

    def kept(self) -> Reply | None:
        """The last answer, if still fresh."""
        return self._reply if time.monotonic() < self._until else None

    def keep(self, reply: Reply) -> None:
        with self._lock:
            self._reply, self._until = reply, time.monotonic() + self.ttl


@dataclass(slots=True, frozen=True, kw_only=True)
class Spec:
    """A provider compiled for serving; shared by the WSGI and ASGI apps.

    Frozen: nothing in it is written while requests are served (periodic
    housekeeping belongs to ``execution``). ``store_call`` is how operations
    call ``store``; ``run_lease`` and ``pending_wait`` are seconds (the
    provider's settings of those names).
    """

    description: bytes
    openapi: bytes
    visible: Access
    runnable: Access
    auth: Authenticator
    store: Store
    store_call: StoreCall
    execution: Execution
    validate: Callable[[Any], Any]
    handlers: Mapping[str, Handler]
    synchronous: bool
    max_body: int
    release_after: str
    max_deadline: float
    run_lease: float = 10.0
    pending_wait: float = 30.0
    access_log: bool = True
    hooks: tuple[Callable[..., None], ...] = ()
    #: The background job, if the provider has one.
    jobs: JobEngine | None = None
    #: ``max_runs_per_caller`` as ``(runs, seconds)``; ``None``: no limit.
    run_rate: tuple[int, float] | None = None
    #: The provider page, answered to browsers at the root.
    page: ProviderPage | None = None
    #: What records traces and metrics (``None``: nothing does).
    telemetry: Telemetry | None = None
    #: The readiness route's kept answer.
    readiness: Verdict = field(default_factory=Verdict)
    #: Who may read the job console over HTTP (``administered_by``).
    administrators: Access = field(
        default_factory=lambda: Access(False, frozenset(), frozenset())
    )


def to_json(doc: Any) -> bytes:
    return orjson.dumps(doc)
