"""Acting as the caller for a whole job: dependent refresh tokens, kept
encrypted at rest in the job's row.

A job declared with ``keep_tokens=True`` gets, in the request that accepts
its run (while the caller's token is fresh), a dependent-token grant with
``access_type=offline`` for the scopes its author declared
(:func:`granted`): a refresh token per scope. They go into the job's row from
its first write, sealed with the newest key of the key ring
(:mod:`aptools.jobs.keys`), with the caller's access token, so that any
process, at any later time, acts as the caller (:class:`TokenCaller`). A
scope nobody declared is granted when the job first asks for it, with the
caller's access token while it is valid.

Refresh tokens Globus Auth rotates (RFC 6749 section 6) are kept at once. A
grant refused with ``invalid_grant`` (an expired token, a revoked consent) is
:class:`~aptools.ConsentRequired`: the action waits for its caller. Tokens
are never logged, and go from the store when the action ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aptools.auth import Caller
from aptools.auth.globus import auth_errors, scope_names
from aptools.errors import AuthServiceError, ConsentRequired
from aptools.jobs.callers import no_token
from aptools.jobs.keys import (
    KEY_VARIABLE,
    TokensUnreadable,
    dev_key,
    load_key,
    seal,
    unseal,
)

if TYPE_CHECKING:
    from cryptography.fernet import Fernet, MultiFernet

    from aptools.auth.globus_client import GlobusAuthClient

__all__ = [
    "KEY_VARIABLE",
    "TokenCaller",
    "TokensUnreadable",
    "dev_key",
    "granted",
    "load_key",
    "seal",
    "unreadable_details",
]


def granted(
    auth: GlobusAuthClient, token: str, scopes: Sequence[str]
) -> dict[str, str]:
    """Refresh tokens by scope for every one of ``scopes``, from one offline
    dependent-token grant made with the caller's access ``token``.

    Raises :class:`~aptools.ConsentRequired` naming the scopes Globus Auth
    gave no token for (no consent) or all of them when it refuses the grant
    (``invalid_grant``: the token expired); 503/502 errors for outages and
    the provider's own bad credentials.
    """
    with auth_errors("get the job's dependent tokens", consent_for=list(scopes)):
        tokens = auth.client().oauth2_get_dependent_tokens(
            token, scope=" ".join(scopes), refresh_tokens=True
        )
    found: dict[str, str] = {}
    for scope in scopes:
        wanted = scope_names(scope)
        for info in tokens.by_resource_server.values():
            refresh = info.get("refresh_token")
            if refresh and wanted <= scope_names(str(info.get("scope", ""))):
                found[scope] = str(refresh)
                break
    missing = [scope for scope in scopes if scope not in found]
    if missing:
        raise ConsentRequired(required_scopes=missing)
    return found


class TokenCaller(Caller):
    """A job's caller whose dependent tokens come from kept refresh tokens.

    ``sealed`` is what the job's row keeps (:func:`~aptools.jobs.keys.seal`);
    ``save`` stores a new sealed value in the row (a write fenced to the job's
    holder), called at once when a refresh token is granted or rotated.
    Raises :class:`~aptools.jobs.keys.TokensUnreadable` when no key opens
    ``sealed``.
    """

    __slots__ = ("_kept", "_keys", "_refresh", "_save")

    def __init__(
        self,
        *,
        keys: MultiFernet | Fernet,
        sealed: bytes | None,
        save: Callable[[bytes], Any],
        **identity: Any,
    ) -> None:
        super().__init__(**identity)
        self._keys = keys
        self._save = save
        self._refresh, self._kept = unseal(keys, sealed)
        if not self._token:
            self._token = self._kept  # the accepting or resuming caller's

    def __repr__(self) -> str:
        return f"TokenCaller(identity_urn={self.identity_urn!r})"

    def dependent_token(self, scope: str) -> dict[str, Any]:
        """A valid access token for ``scope`` (token data as Globus Auth
        gives it): refreshed with the kept refresh token, else granted with
        the caller's access token. Raises :class:`~aptools.ConsentRequired`
        when neither works (no consent, consent revoked, token expired)."""
        with self._lock:
            found = self._dependent.get(scope)
            if found is not None and found["expires_at_seconds"] - 60 >= time.time():
                return found
            refresh = self._refresh.get(scope)
            found = self._refreshed(scope, refresh) if refresh else self._granted(scope)
            self._dependent[scope] = found
            return found

    def _keep(self) -> None:
        self._save(seal(self._keys, self._refresh, self._kept or None))

    def _granted(self, scope: str) -> dict[str, Any]:
        if not self._token:
            # Taken over from a process that died, with no refresh token for
            # the scope: the caller must act again (consent, then resume).
            raise no_token(scope)
        with auth_errors("get a dependent token", consent_for=scope):
            tokens = (
                self._require_auth()
                .client()
                .oauth2_get_dependent_tokens(
                    self._token, scope=scope, refresh_tokens=True
                )
            )
        wanted = scope_names(scope)
        for info in tokens.by_resource_server.values():
            if wanted <= scope_names(str(info.get("scope", ""))):
                refresh = info.get("refresh_token")
                if refresh:
                    self._refresh[scope] = str(refresh)
                    self._keep()
                return dict(info)
        raise ConsentRequired(required_scopes=[scope])

    def _refreshed(self, scope: str, refresh: str) -> dict[str, Any]:
        # invalid_grant: the refresh token was revoked (or its consent).
        with auth_errors("refresh a dependent token", consent_for=scope):
            tokens = self._require_auth().client().oauth2_refresh_token(refresh)
        for info in tokens.by_resource_server.values():
            rotated = info.get("refresh_token")
            if rotated and rotated != refresh:
                # RFC 6749 section 6: the old one is void; keep the new at once.
                self._refresh[scope] = str(rotated)
                self._keep()
            return dict(info)
        raise AuthServiceError("Globus Auth refreshed no token.")


def unreadable_details() -> dict[str, str]:
    """The details of an action whose kept tokens no key opens."""
    return {
        "code": "TokensUnreadable",
        "description": (
            "The provider cannot read the tokens it kept to act for you (its "
            "encryption key changed); its operator was told. Run the action again."
        ),
    }
