"""Who is calling: bearer token -> :class:`Caller`, through Globus Auth.

Introspection goes through the real globus-sdk. Results are cached under a
hash of the token for a bounded time, and however many requests carry a new
token at once, only one introspection of it is in flight. With a store that
can share them (the SQLite store), the worker processes of one host share
results too: one introspection per token, however many workers see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from aptools.errors import AuthServiceError, AuthServiceUnavailable, Unauthorized

if TYPE_CHECKING:
    import globus_sdk

from aptools.auth.caller import Caller
from aptools.vocabulary import GROUP_URN, GROUPS_SCOPE, IDENTITY_URN

log = logging.getLogger("aptools.auth")


_Outcome = Caller | Unauthorized


class SharedIntrospections(Protocol):
    """Introspection results shared by the worker processes of one host.

    Keys are hashes of tokens (never tokens); records are JSON objects. A
    store offers one from :meth:`~aptools.Store.introspections`, keyed
    within the namespace of the provider it is bound to. Failures of the
    shared place must not fail a request: ``get`` then answers ``None`` and
    ``put`` does nothing. Whatever a record says, the reader checks it
    against its own scope before trusting it.
    """

    def hold(self, key: bytes, wait: float) -> AbstractContextManager[None]:
        """Keep other processes from introspecting ``key`` for the block.

        Waits at most ``wait`` seconds for another holder, then goes on.
        """

    def get(self, key: bytes, now: float) -> tuple[float, dict[str, Any]] | None:
        """The record for ``key`` and when it expires, unless expired."""

    def put(self, key: bytes, expires_at: float, record: dict[str, Any]) -> None:
        """Keep ``record`` for ``key`` until ``expires_at`` (a POSIX time)."""


class Authenticator:
    """Turns bearer tokens into callers, via Globus Auth token introspection."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        scope: str,
        cache_ttl: float = 60.0,
        cache_size: int = 10_000,
        timeout: float = 2.0,
        shared: SharedIntrospections | None = None,
    ) -> None:
        self._client_id = client_id
        self._shared = shared
        self._secret = client_secret
        self.scope = scope
        self._ttl = cache_ttl
        self._size = cache_size
        self._timeout = timeout
        self._cache: dict[bytes, tuple[float, _Outcome]] = {}
        self._inflight: dict[bytes, Future[Caller]] = {}
        self._lock = threading.Lock()
        self._client: globus_sdk.ConfidentialAppAuthClient | None = None

    def __repr__(self) -> str:
        return f"Authenticator(client_id={self._client_id!r}, scope={self.scope!r})"

    # -- the request path ---------------------------------------------------

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def cached(self, key: bytes) -> Caller | None:
        """The cached caller for a token key, if fresh; raises if known bad."""
        hit = self._cache.get(key)
        if hit is None:
            return None
        expires, outcome = hit
        if expires < time.monotonic():
            return None
        if isinstance(outcome, Unauthorized):
            raise Unauthorized(outcome.description)
        return outcome

    def authenticate(self, key: bytes, token: str) -> Caller:
        """Introspect (or wait for the introspection already under way)."""
        future, owner = self._claim(key)
        if owner:
            self._resolve(key, token, future)
        return future.result()

    async def authenticate_async(self, key: bytes, token: str) -> Caller:
        """:meth:`authenticate` for the event loop: waiters hold no thread."""
        future, owner = self._claim(key)
        if owner:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, self._resolve, key, token, future)
        return await asyncio.wrap_future(future)

    def _claim(self, key: bytes) -> tuple[Future[Caller], bool]:
        with self._lock:
            future = self._inflight.get(key)
            if future is not None:
                return future, False
            hit = self._cache.get(key)
            future = Future()
            if hit is not None and hit[0] >= time.monotonic():
                # Answered while this request was on its way here.
                outcome = hit[1]
                if isinstance(outcome, Unauthorized):
                    future.set_exception(Unauthorized(outcome.description))
                else:
                    future.set_result(outcome)
                return future, False
            self._inflight[key] = future
            return future, True

    def _resolve(self, key: bytes, token: str, future: Future[Caller]) -> None:
        try:
            if self._shared is None:
                outcome, ttl = self._outcome(token)
            else:
                outcome, ttl = self._shared_outcome(self._shared, key, token)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            self._remember(key, outcome, ttl)
            if isinstance(outcome, Unauthorized):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _outcome(self, token: str) -> tuple[_Outcome, float]:
        """Introspect: a caller, or the reason the token is refused."""
        try:
            return self._introspect(token)
        except Unauthorized as exc:
            return exc, self._ttl

    def _shared_outcome(
        self, shared: SharedIntrospections, key: bytes, token: str
    ) -> tuple[_Outcome, float]:
        # Long enough for another process's introspection, retry included.
        with shared.hold(key, wait=2 * self._timeout + 1):
            found = shared.get(key, time.time())
            if found is not None:
                expires_at, record = found
                outcome = self._from_record(record, token)
                if outcome is not None:
                    return outcome, expires_at - time.time()
            outcome, ttl = self._outcome(token)
            if ttl > 0:
                shared.put(key, time.time() + ttl, _record(outcome, self.scope))
            return outcome, ttl

    def _from_record(self, record: dict[str, Any], token: str) -> _Outcome | None:
        """The outcome a shared record holds, if this provider may trust it.

        A record counts only when it was written for this provider's scope,
        and an acceptance only when it says the token is active and was
        issued for that scope; anything else is introspected anew.
        """
        try:
            if record.get("scope") != self.scope:
                return None
            if "refused" in record:
                return Unauthorized(str(record["refused"]))
            scopes = frozenset(record["scopes"])
            if record.get("active") is not True or self.scope not in scopes:
                return None
            return Caller(
                identity_id=record["sub"],
                identities=frozenset(record["identities"]),
                username=record["username"],
                client_id=record["client_id"],
                scopes=scopes,
                token=token,
                auth=self,
            )
        except (AttributeError, KeyError, TypeError):
            log.warning("a shared introspection record is malformed; ignored")
            return None

    def _remember(self, key: bytes, outcome: _Outcome, ttl: float) -> None:
        if ttl <= 0:
            return
        with self._lock:
            if len(self._cache) >= self._size:
                now = time.monotonic()
                stale = [k for k, (exp, _) in self._cache.items() if exp < now]
                for k in stale:
                    del self._cache[k]
                while len(self._cache) >= self._size:
                    del self._cache[next(iter(self._cache))]
            self._cache[key] = (time.monotonic() + ttl, outcome)

    # -- Globus Auth ----------------------------------------------------------

    def client(self) -> globus_sdk.ConfidentialAppAuthClient:
        """The SDK client, made on first use (after any fork)."""
        if self._client is None:
            import globus_sdk
            from globus_sdk.transport import RequestsTransport, RetryConfig

            self._client = globus_sdk.ConfidentialAppAuthClient(
                self._client_id,
                self._secret,
                transport=RequestsTransport(http_timeout=self._timeout),
                retry_config=RetryConfig(max_retries=1, max_sleep=0.5),
            )
        return self._client

    def _introspect(self, token: str) -> tuple[Caller, float]:
        with _auth_errors("introspect a token"):
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
            ttl = min(ttl, exp - time.time())
            if ttl <= 0:
                raise Unauthorized("The bearer token has expired.")
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
        with _auth_errors("get a dependent token"):
            tokens = self.client().oauth2_get_dependent_tokens(token, scope=scope)
        for info in tokens.by_resource_server.values():
            if scope in str(info.get("scope", "")).split():
                return dict(info)
        raise AuthServiceError("Globus Auth granted no dependent token for the scope.")

    def fetch_groups(self, caller: Caller) -> frozenset[str]:
        import globus_sdk
        from globus_sdk.transport import RequestsTransport, RetryConfig

        info = caller.dependent_token(GROUPS_SCOPE)
        groups = globus_sdk.GroupsClient(
            authorizer=globus_sdk.AccessTokenAuthorizer(info["access_token"]),
            transport=RequestsTransport(http_timeout=self._timeout),
            retry_config=RetryConfig(max_retries=1, max_sleep=0.5),
        )
        with _auth_errors("list the caller's groups"):
            found = groups.get_my_groups(statuses="active")
        return frozenset(GROUP_URN + str(group["id"]) for group in found)


def _record(outcome: _Outcome, scope: str) -> dict[str, Any]:
    """What another process of the provider with ``scope`` needs to rebuild
    ``outcome`` (no token)."""
    if isinstance(outcome, Unauthorized):
        return {"scope": scope, "refused": outcome.description}
    return {
        "scope": scope,
        "active": True,
        "sub": outcome.identity_id,
        "identities": sorted(outcome.identities),
        "username": outcome.username,
        "client_id": outcome.client_id,
        "scopes": sorted(outcome.scopes),
    }


@contextlib.contextmanager
def _auth_errors(what: str) -> Iterator[None]:
    """Map globus-sdk failures to 502/503 answers, logging what happened."""
    import globus_sdk

    try:
        yield
    except globus_sdk.NetworkError as exc:
        log.warning("could not %s: Globus unreachable (%s)", what, type(exc).__name__)
        raise AuthServiceUnavailable() from None
    except globus_sdk.GlobusAPIError as exc:
        log.error(
            "could not %s: Globus answered HTTP %s (%s)",
            what,
            exc.http_status,
            exc.code,
        )
        if exc.http_status in (401, 403):
            raise AuthServiceError(
                "The provider could not authenticate itself to Globus Auth."
            ) from None
        if exc.http_status >= 500 or exc.http_status == 429:
            raise AuthServiceUnavailable() from None
        raise AuthServiceError() from None
