"""The provider's calls to Globus Auth and Groups, through the real globus-sdk.

- token introspection: a bearer token -> :class:`~aptools.auth.Caller` and
  how long the answer may be kept (RFC 7662; Globus Auth's ``active`` is the
  verdict, ``exp`` only bounds the keeping);
- the dependent-token grant, on the caller's behalf, for another scope;
- the caller's groups, from Globus Groups with a dependent token.

Each call waits at most ``timeout`` seconds per attempt and is retried once.
No caching here: :class:`~aptools.auth.Authenticator` adds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from aptools.auth.caller import Caller
from aptools.auth.globus import auth_errors, scope_names
from aptools.errors import AuthServiceError, ConsentRequired, Unauthorized
from aptools.vocabulary import GROUP_URN, GROUPS_SCOPE, IDENTITY_URN

if TYPE_CHECKING:
    import globus_sdk

__all__ = ["GlobusAuthClient", "unobserved"]

_NOTHING: AbstractContextManager[None] = nullcontext()


def unobserved(name: str) -> AbstractContextManager[None]:
    """How a Globus Auth call is observed when nothing records it (the
    telemetry of :mod:`aptools.telemetry` replaces it when it records)."""
    return _NOTHING


log = logging.getLogger("aptools.auth")


class GlobusAuthClient:
    """Globus Auth as the provider (a confidential client) calls it.

    ``cache_ttl`` (seconds) caps the keeping time :meth:`_introspect`
    answers with; ``timeout`` (seconds) bounds each HTTP attempt.
    """

    #: Wraps each call to Globus Auth or Groups (``name``: ``introspect``,
    #: ``dependent_token``, ``groups``): telemetry's, when it records.
    observe: Callable[[str], AbstractContextManager[None]] = staticmethod(unobserved)

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        scope: str,
        cache_ttl: float,
        timeout: float,
    ) -> None:
        self._client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self._ttl = cache_ttl
        self._timeout = timeout
        self._client: globus_sdk.ConfidentialAppAuthClient | None = None

    def client(self) -> globus_sdk.ConfidentialAppAuthClient:
        """The SDK client, made on first use (after any fork)."""
        if self._client is None:
            self._client = self._make()
        return self._client

    def prepare(self) -> None:
        """Load now what the first call to Globus Auth would load (globus-sdk's
        modules, loaded lazily, and its HTTP stack: about 0.2-0.5 s on a
        busy host), so that no request's ``timeout`` pays for it. Opens no
        connection and keeps no client: each process still makes its own on
        first use."""
        self._make()

    def _make(self) -> globus_sdk.ConfidentialAppAuthClient:
        import globus_sdk
        from globus_sdk.transport import RequestsTransport, RetryConfig

        return globus_sdk.ConfidentialAppAuthClient(
            self._client_id,
            self._secret,
            transport=RequestsTransport(http_timeout=self._timeout),
            retry_config=RetryConfig(max_retries=1, max_sleep=0.5),
        )

    def _introspect(self, token: str) -> tuple[Caller, float]:
        with self.observe("introspect"), auth_errors("introspect a token"):
            response = self.client().oauth2_token_introspect(
                token, include="identity_set"
            )
        data = response.data
        if not isinstance(data, dict):
            log.error("Globus Auth answered an introspection with no JSON object")
            raise AuthServiceError()
        if not data.get("active"):
            raise Unauthorized("The bearer token is not active.")
        scopes = frozenset(str(data.get("scope") or "").split())
        if self.scope not in scopes:
            raise Unauthorized(
                "The bearer token was not issued for this provider's scope."
            )
        sub = data.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("The bearer token names no identity.")
        identity_set = data.get("identity_set") or [sub]
        identities = frozenset(IDENTITY_URN + str(i) for i in [sub, *identity_set])
        ttl = self._ttl
        exp = data.get("exp")
        if isinstance(exp, int | float):
            # Globus Auth said active: that holds whatever this host's clock
            # says; ``exp`` only bounds how long the answer is kept (0: not
            # kept, when the clocks disagree).
            ttl = max(0.0, min(ttl, exp - time.time()))
        caller = Caller(
            identity_id=sub,
            identities=identities,
            username=data.get("username"),
            client_id=data.get("client_id"),
            scopes=scopes,
            token=token,
            auth=self,
        )
        return caller, ttl

    def dependent_token(self, token: str, scope: str) -> dict[str, Any]:
        """The token data Globus Auth grants for ``scope`` on the caller's behalf.

        Raises :class:`~aptools.ConsentRequired` when Globus Auth grants no
        token for ``scope`` because the caller has not consented: its answer
        lacks one, or it refuses the grant saying consent is needed.
        Outages and the provider's own bad credentials are 503/502
        (:class:`~aptools.AuthServiceUnavailable`, :class:`~aptools.AuthServiceError`).
        """
        with (
            self.observe("dependent_token"),
            auth_errors("get a dependent token", consent_for=scope),
        ):
            tokens = self.client().oauth2_get_dependent_tokens(token, scope=scope)
        wanted = scope_names(scope)
        for info in tokens.by_resource_server.values():
            if wanted <= scope_names(str(info.get("scope", ""))):
                return dict(info)
        log.info("Globus Auth granted no dependent token for a scope: no consent")
        raise ConsentRequired(required_scopes=[scope])

    def fetch_groups(self, caller: Caller) -> frozenset[str]:
        import globus_sdk
        from globus_sdk.transport import RequestsTransport, RetryConfig

        try:
            info = caller.dependent_token(GROUPS_SCOPE)
        except ConsentRequired:
            # The provider's scope lacks Groups as a dependent scope: the
            # provider's set-up, not something its caller can consent to.
            log.error(
                "Globus Auth granted no Groups token: is %s a dependent "
                "scope of the provider's scope?",
                GROUPS_SCOPE,
            )
            raise AuthServiceError(
                "Globus Auth granted no token to look up your groups."
            ) from None
        groups = globus_sdk.GroupsClient(
            authorizer=globus_sdk.AccessTokenAuthorizer(info["access_token"]),
            transport=RequestsTransport(http_timeout=self._timeout),
            retry_config=RetryConfig(max_retries=1, max_sleep=0.5),
        )
        with self.observe("groups"), auth_errors("list the caller's groups"):
            found = groups.get_my_groups(statuses="active")
        return frozenset(GROUP_URN + str(group["id"]) for group in found)
