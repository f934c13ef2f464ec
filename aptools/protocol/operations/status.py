"""status: an action's current state."""

from __future__ import annotations

import time

from aptools.protocol.access import (
    MONITOR,
    authenticate,
    cached_caller,
    permitted,
)
from aptools.protocol.effects import Op
from aptools.protocol.lifecycle import (
    refresh,
)
from aptools.protocol.spec import Reply, Request, Spec
from aptools.vocabulary import TERMINAL


def status(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    # PERF: a known caller polling their own stored, finished (or never
    # refreshed) action, the most frequent request of all, is answered
    # without an introspection or a refresh.
    caller = cached_caller(spec, req)
    if caller is None:
        caller = yield from authenticate(spec, req)
    stored = yield from spec.store_call(spec.store.get, action_id, time.time())
    if (
        stored is not None
        and stored.creator_id in caller.identities
        and (stored.status in TERMINAL or "status" not in spec.handlers)
    ):
        return 200, stored.public
    stored = yield from permitted(caller, stored, MONITOR)
    if "status" in spec.handlers and stored.status not in TERMINAL:
        stored = yield from refresh(spec, "status", stored, caller)
    return 200, stored.public
