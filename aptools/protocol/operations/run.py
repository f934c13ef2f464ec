"""run: start an action, once per request key (the interface's idempotency)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from aptools.actions import (
    CONSENT_KEY,
    apply,
    consent_needed,
    expiry,
    fail,
    new_action_id,
    run_result,
)
from aptools.auth import Caller
from aptools.backoff import pauses
from aptools.errors import (
    ActionFailed,
    BadRequest,
    Conflict,
    ConsentRequired,
    PayloadTooLarge,
    RequestValidationError,
    UnprocessableEntity,
)
from aptools.models import Action, ActionRequest, isoformat
from aptools.protocol.access import (
    authenticate,
    cached_caller,
    require,
)
from aptools.protocol.effects import Blocking, Op, ReadBody, Sleep
from aptools.protocol.runrate import counted
from aptools.protocol.spec import Reply, Request, Spec
from aptools.store import RequestKey, Reservation, Stored
from aptools.times import parse_datetime
from aptools.vocabulary import INACTIVE, TERMINAL

# orjson serializes at most 254 nested arrays and objects; documents are
# stored and fingerprinted by it, so this is the deepest a run request may be.
MAX_DEPTH: Final = 254
_TOO_DEEP: Final = (
    f"The request body is nested too deeply (at most {MAX_DEPTH} levels of "
    "arrays and objects)."
)


def check_length(spec: Spec, req: Request, length: int | None = None) -> None:
    """413 for a declared ``Content-Length`` (``length``, else the
    request's) over the provider's limit, before any byte is read."""
    if length is None:
        length = req.content_length
    if length is not None and length > spec.max_body:
        raise PayloadTooLarge(f"The request body may be at most {spec.max_body} bytes.")


def parse(spec: Spec, raw: bytes) -> Any:
    """The run document in ``raw`` (at most ``max_body + 1`` bytes read):
    413 past the limit, 400 for an empty or malformed body."""
    if len(raw) > spec.max_body:
        raise PayloadTooLarge(f"The request body may be at most {spec.max_body} bytes.")
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON object is required.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg:
            raise BadRequest(_TOO_DEEP) from None
        raise BadRequest(
            f"The request body is not valid JSON (line {exc.lineno}, "
            f"column {exc.colno})."
        ) from None


def _read_document(spec: Spec, req: Request) -> Op[Any]:
    check_length(spec, req)
    raw: bytes = yield ReadBody(req, spec.max_body)
    return parse(spec, raw)


def _fingerprint(document: Any) -> str:
    """The request's identity for idempotency; refuses (400) what cannot be
    written back, before any work: the parser takes 1,024 levels of nesting,
    the serializer (and so the store) 254."""
    try:
        encoded = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        raise BadRequest(_TOO_DEEP) from None
    return hashlib.sha256(encoded).hexdigest()


def _deadline(spec: Spec, text: str | None, now: float) -> datetime | None:
    if text is None:
        return None
    try:
        deadline = parse_datetime(text)
    except ValueError as exc:
        raise RequestValidationError(f"$.deadline: {exc} (rule 'format')") from None
    if deadline.timestamp() > now + spec.max_deadline:
        # Well formed, but more than this provider promises: 422, not 400.
        raise UnprocessableEntity(
            "$.deadline: is later than this provider's maximum_deadline "
            "(rule 'maximum_deadline')"
        )
    return deadline.astimezone(UTC)


def admit(spec: Spec, req: Request, document: Any) -> tuple[ActionRequest, str, float]:
    """The validated request of run ``document``, its fingerprint and the
    time it was admitted (POSIX seconds); 400 or 422 for a bad document.

    The fingerprint comes first: a document too deep to be written back is
    refused before validation (see :func:`_fingerprint`).
    """
    fingerprint = _fingerprint(document)
    spec.validate(document)
    if spec.jobs is not None:
        # A host without its encryption key: 503, before anything is kept.
        spec.jobs.request_keys()
    now = time.time()
    get = document.get
    deadline = _deadline(spec, get("deadline"), now)
    allowed = get("allowed_clients")
    request = ActionRequest(
        action_id=new_action_id(),
        request_id=document["request_id"],
        body=document["body"],
        label=get("label"),
        monitor_by=tuple(get("monitor_by", ())),
        manage_by=tuple(get("manage_by", ())),
        allowed_clients=None if allowed is None else tuple(allowed),
        deadline=deadline,
        release_after=get("release_after") or spec.release_after,
    )
    req.context.request_id = request.request_id  # for the logs and traces
    return request, fingerprint, now


def earlier(req: Request, reservation: Reservation, give_up: float) -> Reply | None:
    """The answer to a request key not reserved anew: the finished action of
    the same request (200), 409 for another request under the same key or
    for one still pending at ``give_up`` (``time.monotonic()``), ``None``
    to wait and try again."""
    if reservation.stored is not None:  # the same request, finished before
        req.context.action_id = reservation.stored.action_id
        return 200, reservation.stored.public
    if reservation.outcome == "conflict":
        raise Conflict(
            "This request_id was already used by you for a different request."
        )
    if time.monotonic() > give_up:
        raise Conflict("An identical request is still being processed; retry later.")
    return None


def new_action(request: ActionRequest, caller: Caller, now: float) -> Action:
    """The ACTIVE action of a reserved request, started at ``now``."""
    deadline = request.deadline
    return Action(
        action_id=request.action_id,
        status="ACTIVE",
        creator_id=caller.identity_urn,
        request_id=request.request_id,
        body=request.body,
        label=request.label,
        monitor_by=list(request.monitor_by),
        manage_by=list(request.manage_by),
        start_time=isoformat(now),
        release_after=request.release_after,
        deadline=None if deadline is None else deadline.isoformat(),
    )


def ended(
    spec: Spec,
    action: Action,
    request: ActionRequest,
    exc: ActionFailed | ConsentRequired,
) -> None:
    """Fold a run handler's :class:`ActionFailed` (FAILED) or
    :class:`ConsentRequired` (INACTIVE, waiting for resume; the request key
    stays with the action) into ``action``."""
    if isinstance(exc, ActionFailed):
        fail(action, exc)
        return
    allowed = request.allowed_clients
    consent_needed(
        action,
        exc,
        spec.auth.scope,
        "run",
        allowed_clients=None if allowed is None else list(allowed),
    )


def check_synchronous(spec: Spec, action: Action) -> None:
    """A synchronous provider's run handler must finish the action (or make
    it wait for consent): ``TypeError`` otherwise."""
    if spec.synchronous and action.status not in TERMINAL and not waiting(action):
        raise TypeError(
            "a synchronous provider's run handler must finish the action, "
            f"but it answered {action.status}"
        )


def run(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    caller = cached_caller(spec, req) or (yield from authenticate(spec, req))
    if not spec.runnable.everyone:
        yield from require(spec.runnable, caller)
    document = yield from _read_document(spec, req)
    request, fingerprint, now = admit(spec, req, document)
    key = RequestKey(caller.identity_urn, request.request_id, fingerprint)
    give_up = time.monotonic() + spec.pending_wait
    waits = pauses(0.005, 0.1)
    while True:
        claim = (key, request.action_id, now, spec.run_lease)
        reservation: Reservation = yield from spec.store_call(
            spec.store.reserve, *claim
        )
        if reservation.outcome == "new":
            if spec.run_rate is not None:
                yield from counted(spec, caller, request.action_id)
            spec.execution.hold(request.action_id)
            break
        reply = earlier(req, reservation, give_up)
        if reply is not None:
            return reply
        yield Sleep(next(waits))
        now = time.time()

    action = new_action(request, caller, now)
    jobs = spec.jobs
    try:
        if "run" in spec.handlers:
            try:
                handler = spec.handlers["run"]
                result = yield spec.execution.submit(handler, request, caller)
                run_outcome(spec, action, result)
            except (ActionFailed, ConsentRequired) as exc:
                ended(spec, action, request, exc)
        check_synchronous(spec, action)
        if jobs is not None and action.status not in TERMINAL:
            tokens = None
            if jobs.keys is not None:
                # Granted while the request's token is fresh: any process
                # acts as the caller later, from the job's first write.
                if jobs.scopes:
                    grant = jobs.kept_tokens, action, caller, spec.auth.scope
                    tokens = yield Blocking(*grant)
                else:  # PERF: no Globus Auth call: no thread hop (50 us)
                    tokens = jobs.kept_tokens(action, caller, spec.auth.scope)
            # Enqueued before the action is stored: nothing accepted is lost.
            yield from spec.store_call(jobs.admit, action, caller, now, tokens)
        else:
            jobs = None
    except GeneratorExit:
        # Closed by the driver (a cancelled request, an interrupt): free the
        # request key at once — a closing generator may not yield.
        spec.execution.let_go(request.action_id)
        spec.store_call.now(spec.store.abandon, request.action_id)
        raise
    except BaseException:
        # Free the request key so that a retry of the same request can run.
        spec.execution.let_go(request.action_id)
        yield from spec.store_call(spec.store.abandon, request.action_id)
        raise
    stored = Stored.of(action)
    try:
        yield from spec.store_call(spec.store.create, stored, action, expiry(action))
    finally:
        spec.execution.let_go(request.action_id)
    req.context.action_id = action.action_id
    if jobs is not None:
        jobs.wake()
    return 202, stored.public


def run_outcome(spec: Spec, action: Action, result: Any) -> None:
    """Fold the run handler's ``result`` into ``action`` (in place).

    With a job, ``None`` keeps the action ACTIVE for the job and a dict is
    the job's first details; otherwise :func:`apply`'s rule, ``None``
    refused (:func:`run_result`).
    """
    if spec.jobs is not None and result is None:
        pass  # the job does the work; the action starts ACTIVE
    elif spec.jobs is not None and isinstance(result, Mapping):
        action.details = dict(result)  # the job's first details
    else:
        apply(action, run_result(result, spec.handlers["run"].fn))


def waiting(action: Action) -> bool:
    """Whether ``action`` is INACTIVE waiting for its caller's consent."""
    return action.status == INACTIVE and CONSENT_KEY in action.state
