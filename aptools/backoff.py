"""Backoff, one rule for every wait-and-try-again in the package.

The pauses grow by ``factor`` from ``first`` up to ``most`` seconds: quick
retries for what clears quickly (a lock a moment away), patient ones for what
does not (a server restarting). Who sleeps is the caller's choice — a thread
(``time.sleep``), or an operation yielding a ``Sleep`` effect.

>>> list(itertools.islice(pauses(0.001, 0.004), 4))
[0.001, 0.002, 0.004, 0.004]
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["pauses"]


def pauses(first: float, most: float, factor: float = 2.0) -> Iterator[float]:
    """Endless pauses in seconds: ``first``, ``first * factor``, ... at most
    ``most``."""
    pause = first
    while True:
        yield pause
        pause = min(pause * factor, most)
