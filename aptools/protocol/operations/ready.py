"""ready: whether this process can serve requests now (for load balancers
and orchestrators), as opposed to the root route, which only shows that it
answers at all."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aptools.errors import ProviderMisconfigured, StoreUnavailable
from aptools.protocol.effects import Blocking, Op
from aptools.protocol.spec import Reply, Request, Spec, to_json
from aptools.settings import ProviderConfigError

log = logging.getLogger("aptools")

READY: Final[Reply] = (200, to_json({"ready": True}))


def ready(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    """``200 {"ready": true}``, or ``503 {"ready": false, "code",
    "description"}`` while the store cannot be reached or its schema is not
    the one this code expects (:meth:`~aptools.Store.ready`; code
    ``StoreUnavailable``), or while this host lacks a setting every run needs
    (a job that keeps tokens without a usable encryption key; code
    ``ProviderMisconfigured``, naming it). No token is
    needed; the verdict is kept a short while (``spec.readiness``), so the
    route costs one store check every few seconds whatever the probe rate,
    and turns ready again by itself once the store is back.
    """
    kept = spec.readiness.kept()
    if kept is not None:
        return kept
    unset = _misconfigured(spec)
    if unset is not None:
        spec.readiness.keep(unset)
        return unset
    check = spec.store.ready
    try:
        if asyncio.iscoroutinefunction(spec.store.get) and (
            not asyncio.iscoroutinefunction(check)
        ):
            # A store of async methods that kept the (plain) default check.
            yield Blocking(check)
        else:
            yield from spec.store_call(check)
        reply = READY
    except StoreUnavailable as exc:
        reply = _not_ready(exc.description or StoreUnavailable.default_description)
    except Exception:
        log.exception("the store's readiness check failed")
        reply = _not_ready("The action store's readiness check failed.")
    spec.readiness.keep(reply)
    return reply


def _misconfigured(spec: Spec) -> Reply | None:
    """503 naming the setting this host lacks to serve every request (the
    encryption key of a job that keeps tokens), else None. The description
    names the setting, never a key."""
    if spec.jobs is None:
        return None
    try:
        spec.jobs.keys  # noqa: B018 - read to check it
    except ProviderConfigError as exc:
        return _not_ready(str(exc), ProviderMisconfigured.error_code)
    return None


def _not_ready(description: str, code: str = "StoreUnavailable") -> Reply:
    return 503, to_json({"ready": False, "code": code, "description": description})
