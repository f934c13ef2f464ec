"""ready: whether this process can serve requests now (for load balancers
and orchestrators), as opposed to the root route, which only shows that it
answers at all."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from aptools.errors import StoreUnavailable
from aptools.protocol.effects import Blocking, Op
from aptools.protocol.spec import Reply, Request, Spec, to_json

log = logging.getLogger("aptools")

READY: Final[Reply] = (200, to_json({"ready": True}))


def ready(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    """``200 {"ready": true}``, or ``503 {"ready": false, "code",
    "description"}`` while the store cannot be reached or its schema is not
    the one this code expects (:meth:`~aptools.Store.ready`). No token is
    needed; the verdict is kept a short while (``spec.readiness``), so the
    route costs one store check every few seconds whatever the probe rate,
    and turns ready again by itself once the store is back.
    """
    kept = spec.readiness.kept()
    if kept is not None:
        return kept
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


def _not_ready(description: str) -> Reply:
    return 503, to_json(
        {"ready": False, "code": "StoreUnavailable", "description": description}
    )
