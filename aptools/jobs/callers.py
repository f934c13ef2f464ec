"""The callers a job acts as when its request's own is not at hand."""

from __future__ import annotations

from typing import Any

from aptools.auth import Caller
from aptools.errors import ConsentRequired

__all__ = ["Reconnected", "no_token"]


def no_token(scope: str) -> ConsentRequired:
    """What a job that holds no token of its caller's for ``scope`` raises
    (taken over from a process that died, or resumed elsewhere, without a
    kept token): the caller must act again — consent, then resume."""
    return ConsentRequired(
        "The provider holds no token of yours for a scope it needs; "
        "consent to it and resume the action.",
        required_scopes=[scope],
    )


class Reconnected(Caller):
    """The caller of a job taken over from another process: no token."""

    __slots__ = ()

    def dependent_token(self, scope: str) -> dict[str, Any]:
        raise no_token(scope)
