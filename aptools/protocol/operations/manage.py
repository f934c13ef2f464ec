"""cancel, release and resume: what the creator and ``manage_by`` may do."""

from __future__ import annotations

from aptools.errors import (
    Conflict,
)
from aptools.protocol.access import (
    MANAGE,
    authenticate,
    load,
)
from aptools.protocol.effects import Op
from aptools.protocol.lifecycle import (
    CANCELED,
    finish_fields,
    refresh,
    save,
)
from aptools.protocol.spec import Reply, Request, Spec
from aptools.vocabulary import FAILED, TERMINAL


def cancel(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = yield from authenticate(spec, req)
    stored = yield from load(spec, caller, action_id, MANAGE)
    if stored.status in TERMINAL:
        return 200, stored.public
    if "cancel" in spec.handlers:
        stored = yield from refresh(spec, "cancel", stored, caller)
        if spec.jobs is not None and stored.status in TERMINAL:
            yield from spec.store_call(spec.jobs.cancel, action_id)
        return 200, stored.public
    action = stored.action()
    action.status, action.display_status = FAILED, CANCELED
    finish_fields(action)
    stored = yield from save(spec, action)
    if spec.jobs is not None:
        yield from spec.store_call(spec.jobs.cancel, action_id)
    return 200, stored.public


def release(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = yield from authenticate(spec, req)
    stored = yield from load(spec, caller, action_id, MANAGE)
    if stored.status not in TERMINAL and "status" in spec.handlers:
        stored = yield from refresh(spec, "status", stored, caller)
    if stored.status not in TERMINAL:
        raise Conflict(
            "The action has not finished; cancel it or wait for it to end "
            "before releasing it."
        )
    if "release" in spec.handlers:
        yield spec.handlers["release"](stored.action(), caller)
    yield from spec.store_call(spec.store.delete, action_id)
    return 200, stored.public


def resume(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
    caller = yield from authenticate(spec, req)
    stored = yield from load(spec, caller, action_id, MANAGE)
    if stored.status not in TERMINAL:
        stored = yield from refresh(spec, "resume", stored, caller)
    return 200, stored.public
