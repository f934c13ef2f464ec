"""The arithmetic of a caller's run bucket (:meth:`Store.count_run
<aptools.store.base.Store.count_run>`), for stores that keep it in Python.

A bucket of ``runs`` runs refills at ``runs`` per ``per`` seconds. It is kept
as one time per caller, ``full_at``: when the bucket is full again (a
generic cell rate algorithm). A run takes ``per / runs`` seconds of it; the
run is counted while ``full_at`` stays within ``per`` seconds of now. The
SQL stores run the same rule in one statement.
"""

from __future__ import annotations

__all__ = ["take_run"]


def take_run(
    full_at: float | None, now: float, runs: int, per: float
) -> tuple[float | None, float]:
    """``(new full_at, wait)`` for one run at ``now`` of a bucket full at
    ``full_at`` (``None``: never used). ``wait`` is 0.0 when the run is
    counted (``new full_at`` is then the bucket's next), else the seconds
    until it would be (and ``full_at`` is returned unchanged)."""
    step = per / runs
    after = max(full_at or now, now) + step
    wait = after - per - now
    if wait > 0:
        return full_at, wait
    return after, 0.0
