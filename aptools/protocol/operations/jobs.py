"""jobs: the job console's listing for the provider's administrators."""

from __future__ import annotations

from typing import Any

from aptools.errors import AuthServiceError, NotFound
from aptools.protocol.access import authenticate
from aptools.protocol.effects import Blocking, Op
from aptools.protocol.spec import Reply, Request, Spec, to_json

#: What anyone but an administrator is answered: the route is not theirs.
NOT_HERE = "No such route at this provider."


def jobs_listing(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    """The provider's unfinished jobs as ``aptools jobs --json`` lists them
    (:func:`aptools.jobs.console.list_jobs`), filtered by the ``state`` and
    ``caller`` query parameters, for the identities and groups of
    ``administered_by`` only; anyone else (and a provider without a job) is
    answered 404, as for a route that does not exist."""
    caller = yield from authenticate(spec, req)
    admins = spec.administrators
    allowed = not caller.identities.isdisjoint(admins.identities)
    if not allowed and admins.groups:
        try:
            mine: frozenset[str] = yield Blocking(caller.groups)
        except AuthServiceError:
            mine = frozenset()  # fail closed, answered as for anyone else
        allowed = not mine.isdisjoint(admins.groups)
    if not allowed or spec.jobs is None:
        raise NotFound(NOT_HERE)
    states = spec_states(req.context.query["state"])
    engine = spec.jobs
    # Many store reads: in a worker thread under ASGI, in place under WSGI.
    views: list[Any] = yield Blocking(
        _listing, spec, engine, states, req.context.query["caller"]
    )
    return 200, to_json([v.to_json() for v in views])


def spec_states(words: frozenset[str]) -> frozenset[str]:
    """The states asked for; none (all) when the parameter was absent."""
    return frozenset(w for w in words if w)


def _listing(
    spec: Spec, engine: Any, states: frozenset[str], caller: str | None
) -> Any:
    from aptools.jobs.console import list_jobs

    return list_jobs(
        spec.store,
        engine.queue,
        states=states,
        caller=caller,
        resumable=engine.settings.resumable,
    )
