"""status: an action's current state."""

from __future__ import annotations

import time

from aptools.jobs.fairshare import current, waits
from aptools.protocol.access import (
    MONITOR,
    authenticate,
    cached_caller,
    permitted,
)
from aptools.protocol.effects import Op
from aptools.protocol.lifecycle import overdue, refresh, settle
from aptools.protocol.spec import Reply, Request, Spec
from aptools.vocabulary import TERMINAL


def status(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = cached_caller(spec, req)
    if caller is None:
        caller = yield from authenticate(spec, req)
    stored = yield from spec.store_call(spec.store.get, action_id, time.time())
    stored = yield from permitted(caller, stored, MONITOR)
    stored = yield from settle(spec, stored)
    if "status" in spec.handlers and stored.status not in TERMINAL:
        stored = yield from refresh(spec, "status", stored, caller)
    if waits(spec.jobs, stored):
        # Waiting its turn: how far it is now (one read, no write).
        stored = yield from spec.store_call(current, spec.jobs, stored)
    return 200, stored.public


def status_in_place(spec: Spec, req: Request, action_id: str) -> Reply | None:
    """Status's fast path: the reply, or ``None`` to run :func:`status`.

    PERF: a known caller polling their own stored action that no handler
    would refresh, the most frequent request of all, is answered without a
    generator or a driver (status costs a third more through the driver).
    Routed only for a store called in place (``spec.store_call.in_place``).
    """
    caller = cached_caller(spec, req)
    if caller is None:
        return None
    now = time.time()
    stored = spec.store.get(action_id, now)
    if (
        stored is not None
        and stored.creator_id in caller.identities
        and (stored.status in TERMINAL or "status" not in spec.handlers)
        and not overdue(spec, stored, now)
        and (
            spec.jobs is None
            or spec.jobs.per_caller is None
            or not waits(spec.jobs, stored)
        )
    ):
        return 200, stored.public
    return None
