"""run without a generator: the WSGI face's fast path for the common run.

:func:`run_in_place` is :func:`~aptools.protocol.operations.run.run` as
the WSGI driver would perform it — every effect in place — written as a
plain function for the request nearly every run is: a caller whose token is
cached, a provider anyone may run, no background job, no run rate per
caller, a store called in place. Anything else is answered by the operation
itself. Both are built from the same steps
(:mod:`aptools.protocol.operations.run`), so that the rule lives in one
place; the conformance tests hold both faces to it.
"""

from __future__ import annotations

import time

from aptools.actions import expiry
from aptools.backoff import pauses
from aptools.errors import ActionFailed, ConsentRequired
from aptools.protocol.access import cached_caller
from aptools.protocol.effects import ReadBody, read_declared
from aptools.protocol.operations.run import (
    admit,
    check_length,
    check_synchronous,
    earlier,
    ended,
    new_action,
    parse,
    run_outcome,
)
from aptools.protocol.spec import Reply, Request, Spec
from aptools.store import RequestKey, Stored

__all__ = ["run_in_place"]


def run_in_place(spec: Spec, req: Request, action_id: str | None) -> Reply | None:
    """Run's reply, or ``None`` (before anything is read) to run the operation.

    For the WSGI face only (it reads the request body in place), and only
    with a store called in place (``spec.store_call.in_place``).

    PERF: no generator, no driver, no effect objects but the handler's:
    with the run document's body-only check and the action ids below, a run
    of the echo provider on the memory store went from 258,000 to 215,000
    instructions (callgrind, in process).
    """
    if spec.jobs is not None or spec.run_rate is not None or not spec.runnable.everyone:
        return None
    caller = cached_caller(spec, req)
    if caller is None:
        return None
    length = req.content_length
    if length is None:  # chunked, or no body: as the driver reads it
        raw = ReadBody(req, spec.max_body).run()
    else:
        check_length(spec, req, length)
        # PERF: the declared length, read once (Falcon's bounded stream
        # would read the header again): at most max_body bytes, checked.
        raw = read_declared(req.stream, length)
    document = parse(spec, raw)
    request, fingerprint, now = admit(spec, req, document)
    store, execution, new_id = spec.store, spec.execution, request.action_id
    key = RequestKey(caller.identity_urn, request.request_id, fingerprint)
    give_up = time.monotonic() + spec.pending_wait
    waits = None
    while True:
        reservation = store.reserve(key, new_id, now, spec.run_lease)
        if reservation.outcome == "new":
            execution.hold(new_id)
            break
        reply = earlier(req, reservation, give_up)
        if reply is not None:
            return reply
        if waits is None:
            waits = pauses(0.005, 0.1)
        time.sleep(next(waits))
        now = time.time()

    action = new_action(request, caller, now)
    try:
        handler = spec.handlers.get("run")
        if handler is not None:
            try:
                # The handler's effect, performed in place as the WSGI
                # driver performs it (an async def one on this thread's loop).
                result = execution.submit(handler, request, caller).run()
                run_outcome(spec, action, result)
            except (ActionFailed, ConsentRequired) as exc:
                ended(spec, action, request, exc)
        check_synchronous(spec, action)
    except BaseException:
        # Free the request key so that a retry of the same request can run.
        execution.let_go(new_id)
        store.abandon(new_id)
        raise
    stored = Stored.of(action)
    try:
        store.create(stored, action, expiry(action))
    finally:
        execution.let_go(new_id)
    req.context.action_id = new_id
    return 202, stored.public
