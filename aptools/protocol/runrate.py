"""A limit on the rate of one caller's runs (the provider's
``max_runs_per_caller``): beyond it, run answers 429 with ``Retry-After``.

``(runs, seconds)`` gives each caller identity a bucket of ``runs`` runs,
refilled at ``runs`` per ``seconds``: a caller may start ``runs`` runs at
once, then one every ``seconds / runs`` seconds. The bucket is kept by the
store (:meth:`Store.count_run <aptools.store.base.Store.count_run>`), so
every worker process and host sharing it counts together (in process for
a :class:`~aptools.MemoryStore`, whose actions are in process too).

A run is counted once its request key is taken, so the replay of a request
already accepted (the same ``request_id`` and body) is answered as ever and
never refused. A refused run keeps nothing: its key is let go, and the same
request sent again after ``Retry-After`` seconds runs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from aptools.errors import TooManyRequests
from aptools.settings import ProviderConfigError

if TYPE_CHECKING:
    from aptools.auth import Caller
    from aptools.protocol.effects import Op
    from aptools.protocol.spec import Spec
    from aptools.store import Store

__all__ = ["check_run_rate", "counted", "supported"]


def check_run_rate(value: Any) -> tuple[int, float] | None:
    """``value`` as ``(runs, seconds)`` if it is ``None`` (no limit) or a
    pair of a positive whole number and a positive number of seconds, else
    :class:`~aptools.ProviderConfigError`."""
    if value is None:
        return None
    try:
        runs, per = value
    except (TypeError, ValueError):
        runs = per = None
    if (
        isinstance(runs, bool)
        or not isinstance(runs, int)
        or runs < 1
        or isinstance(per, bool)
        or not isinstance(per, (int, float))
        or not math.isfinite(per)
        or per <= 0
    ):
        raise ProviderConfigError(
            "max_runs_per_caller must be (runs, seconds): a positive whole number"
            f" of runs and a positive number of seconds, or None: {value!r}"
        )
    return runs, float(per)


def supported(store: Store, rate: tuple[int, float] | None) -> None:
    """Raise :class:`~aptools.ProviderConfigError` when ``rate`` is set and
    ``store`` cannot count runs (:meth:`Store.count_run
    <aptools.store.base.Store.count_run>` not implemented)."""
    from aptools.store import Store

    if rate is not None and type(store).count_run is Store.count_run:
        raise ProviderConfigError(
            f"max_runs_per_caller needs a store that counts runs;"
            f" {type(store).__name__} does not"
        )


def counted(spec: Spec, caller: Caller, action_id: str) -> Op[None]:
    """Count the run ``action_id`` (its request key just taken) against
    ``caller``'s bucket; if the bucket is empty, let the key go and raise
    :class:`~aptools.TooManyRequests` with the whole seconds to wait."""
    rate = spec.run_rate
    assert rate is not None
    runs, per = rate
    try:
        wait = yield from spec.store_call(
            spec.store.count_run, caller.identity_id, runs, per
        )
    except GeneratorExit:
        spec.store_call.now(spec.store.abandon, action_id)
        raise
    except BaseException:
        yield from spec.store_call(spec.store.abandon, action_id)
        raise
    if wait > 0:
        yield from spec.store_call(spec.store.abandon, action_id)
        after = math.ceil(wait)
        raise TooManyRequests(
            f"This provider takes at most {runs} runs per {per:g} seconds from"
            f" one caller; retry after {after} seconds.",
            retry_after=after,
        )
