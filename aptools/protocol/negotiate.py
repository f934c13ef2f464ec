"""Content negotiation of the provider's root: the page or the JSON.

The rule is HTTP's (RFC 9110, section 12.5.1): each media type gets the
quality of the most specific range of the ``Accept`` header that matches it
(``text/html`` before ``text/*`` before ``*/*``); absent, it is unwanted.
The page is answered only when ``text/html`` gets a higher quality than
``application/json``: a browser's ``text/html,...,*/*;q=0.8`` asks for the
page; no header, ``*/*``, ``application/json`` or a tie keep the JSON, so
every client of the interface gets the description document it always had.
"""

from __future__ import annotations

from typing import Final

__all__ = ["prefers_html"]

_HTML: Final = ("text", "html")
_JSON: Final = ("application", "json")


def _quality(param: str) -> float | None:
    name, _, value = param.partition("=")
    if name.strip().lower() != "q":
        return None
    try:
        q = float(value.strip())
    except ValueError:
        return 0.0
    return q if 0.0 <= q <= 1.0 else 0.0  # NaN and out of range: unwanted


def prefers_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header prefers ``text/html`` to
    ``application/json``. Malformed parts are ignored, never an error."""
    if not accept or "text/" not in accept.lower():
        return False
    best = {_HTML: (-1, 0.0), _JSON: (-1, 0.0)}  # (specificity, quality)
    for item in accept.split(",")[:64]:
        media, *params = item.split(";")
        kind, _, sub = media.strip().lower().partition("/")
        q = 1.0
        for param in params:
            found = _quality(param)
            if found is not None:
                q = found
                break
        for target, (specific, _) in best.items():
            if (kind, sub) == target:
                rank = 2
            elif kind == target[0] and sub == "*":
                rank = 1
            elif (kind, sub) == ("*", "*"):
                rank = 0
            else:
                continue
            if rank > specific:
                best[target] = (rank, q)
    return best[_HTML][1] > best[_JSON][1]
