"""The request key of the consolidated store interface.

Kept here until :mod:`aptools.store.base` exports ``RequestKey``; then this
module goes and its users import that one.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["RequestKey"]


class RequestKey(NamedTuple):
    """What makes two run requests the same request."""

    creator_id: str  # principal URN of the caller
    request_id: str  # the client's request_id
    fingerprint: str  # sha256 hex of the request document
