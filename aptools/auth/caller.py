"""The authenticated caller of a request, as handlers receive it."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from aptools.errors import AuthServiceError

if TYPE_CHECKING:
    import globus_sdk

from aptools.vocabulary import IDENTITY_URN

if TYPE_CHECKING:
    from aptools.auth.globus_client import GlobusAuthClient


class Caller:
    """The authenticated caller of a request, as handlers receive it.

    ``identity_id`` is the effective identity (the token's ``sub``),
    ``identities`` the URNs of every identity linked to it. Group memberships
    and tokens for other services are fetched only when asked for, then kept
    for as long as this caller is cached::

        transfer = TransferClient(
            authorizer=caller.authorizer(TransferClient.scopes.all)
        )

    Both calls talk to Globus over the network; from an ``async def`` handler
    call them through ``asyncio.to_thread``.
    """

    __slots__ = (
        "_auth",
        "_dependent",
        "_groups",
        "_lock",
        "_token",
        "client_id",
        "identities",
        "identity_id",
        "identity_urn",
        "scopes",
        "username",
    )

    def __init__(
        self,
        *,
        identity_id: str,
        identities: frozenset[str],
        username: str | None,
        client_id: str | None,
        scopes: frozenset[str],
        token: str,
        auth: GlobusAuthClient | None,
    ) -> None:
        self.identity_id = identity_id
        self.identity_urn = IDENTITY_URN + identity_id
        self.identities = identities
        self.username = username
        self.client_id = client_id
        self.scopes = scopes
        self._token = token
        self._auth = auth
        self._groups: frozenset[str] | None = None
        self._dependent: dict[str, dict[str, Any]] = {}
        # Reentrant: groups() asks for a dependent token while holding it.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Caller(identity_urn={self.identity_urn!r}, username={self.username!r})"

    def groups(self) -> frozenset[str]:
        """URNs (``urn:globus:groups:id:...``) of the caller's active groups.

        Raises :class:`~aptools.AuthServiceError` when Globus Groups cannot be
        asked; a failure never reads as "no groups".
        """
        if self._groups is None:
            with self._lock:
                if self._groups is None:
                    self._groups = self._require_auth().fetch_groups(self)
        return self._groups

    def dependent_token(self, scope: str) -> dict[str, Any]:
        """The token data of a dependent-token grant for ``scope`` (cached).

        A dict with ``access_token``, ``scope``, ``resource_server``,
        ``expires_at_seconds`` (POSIX time) and maybe ``refresh_token``.
        Raises :class:`~aptools.ConsentRequired` when the caller has not
        consented to ``scope``; :class:`~aptools.AuthServiceUnavailable`
        (503) or :class:`~aptools.AuthServiceError` (502) when Globus Auth
        cannot be asked or refuses the provider itself.
        """
        with self._lock:
            found = self._dependent.get(scope)
            if found is None or found["expires_at_seconds"] - 60 < time.time():
                found = self._require_auth().dependent_token(self._token, scope)
                self._dependent[scope] = found
            return found

    def authorizer(self, scope: str) -> globus_sdk.AccessTokenAuthorizer:
        """An authorizer acting as the caller at another Globus service.

        Raises as :meth:`dependent_token` does, e.g.
        :class:`~aptools.ConsentRequired` without the caller's consent.
        """
        import globus_sdk

        return globus_sdk.AccessTokenAuthorizer(
            self.dependent_token(scope)["access_token"]
        )

    def _require_auth(self) -> GlobusAuthClient:
        if self._auth is None:
            raise AuthServiceError("this caller is not connected to Globus Auth")
        return self._auth
