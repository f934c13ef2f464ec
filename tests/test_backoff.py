"""The one backoff rule."""

from __future__ import annotations

import itertools

from aptools.backoff import pauses


def test_pauses_grow_to_their_bound() -> None:
    assert list(itertools.islice(pauses(0.001, 0.004), 5)) == [
        0.001,
        0.002,
        0.004,
        0.004,
        0.004,
    ]
    assert list(itertools.islice(pauses(1.0, 3.0, factor=1.5), 4)) == [
        1.0,
        1.5,
        2.25,
        3.0,
    ]
