"""Who is calling: bearer token -> :class:`Caller`, through Globus Auth.

Introspection goes through the real globus-sdk
(:class:`~aptools.auth.globus_client.GlobusAuthClient`, which also gets
dependent tokens and groups). Results are cached under a hash of the token
for a bounded time, and however many requests carry a new token at once,
only one introspection of it is in flight. With a store that
can share them (the SQLite store), the worker processes of one host share
results too: one introspection per token, however many workers see it.

Globus Auth's ``active`` is the verdict on a token; this host's clock only
bounds how long an answer is kept (RFC 7662 §2.2 leaves ``exp`` informative).
A request waits at most ``timeout`` seconds for its authentication, however
long Globus Auth takes: the introspection goes on in the background (its
answer still cached when it comes), and a failure is shared by every request
waiting for the same token, so none of them asks again.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any, Protocol

from aptools.auth.caller import Caller
from aptools.auth.globus import failure_from, failure_record
from aptools.auth.globus_client import GlobusAuthClient
from aptools.auth.sharing import answer, retrieved, settle
from aptools.errors import AuthServiceError, AuthServiceUnavailable, Unauthorized
from aptools.forks import PerProcess

log = logging.getLogger("aptools.auth")


_Outcome = Caller | Unauthorized

#: Introspections in the background at once, per process (each one waits at
#: most about twice the timeout for Globus Auth).
_INTROSPECTORS = 16


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


class Authenticator(GlobusAuthClient):
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
        super().__init__(
            client_id=client_id,
            client_secret=client_secret,
            scope=scope,
            cache_ttl=cache_ttl,
            timeout=timeout,
        )
        self._shared = shared
        self._size = cache_size
        self._cache: dict[bytes, tuple[float, _Outcome]] = {}
        self._inflight: dict[bytes, Future[Caller]] = {}
        self._lock = threading.Lock()
        # A pool made before a fork has no threads in the child.
        self._pool = PerProcess(
            lambda: ThreadPoolExecutor(
                _INTROSPECTORS, thread_name_prefix="aptools-introspect"
            )
        )

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
        """Introspect (or wait for the introspection already under way).

        Answers within the timeout: raises :class:`~aptools.Unauthorized`
        for a refused token, :class:`~aptools.AuthServiceUnavailable` (503)
        when Globus Auth has not answered by then, or the
        :class:`~aptools.AuthServiceError` it answered with.
        """
        future, owner = self._claim(key)
        if owner:
            self._start(key, token, future)
        try:
            future.exception(timeout=self._timeout)
        except TimeoutError:
            self._give_up(future)
        return answer(future)

    async def authenticate_async(self, key: bytes, token: str) -> Caller:
        """:meth:`authenticate` for the event loop: waiters hold no thread."""
        future, owner = self._claim(key)
        if owner:
            self._start(key, token, future)
        if not future.done():
            # asyncio.wait never cancels the shared future when it times out.
            waited = asyncio.wrap_future(future)
            waited.add_done_callback(retrieved)
            await asyncio.wait((waited,), timeout=self._timeout)
            if not future.done():
                self._give_up(future)
        return answer(future)

    def _start(self, key: bytes, token: str, future: Future[Caller]) -> None:
        # In a thread of its own, so that no request waits longer than the
        # timeout: the hand-off costs about 0.1 ms (measured), against a
        # round trip to Globus Auth; cached tokens never come here.
        # In the asking request's context: its trace and log fields.
        context = contextvars.copy_context()
        self._pool.get().submit(context.run, self._resolve, key, token, future)

    def _give_up(self, future: Future[Caller]) -> None:
        """Fail ``future`` for every request waiting on it (unless just answered)."""
        try:
            future.set_exception(AuthServiceUnavailable())
        except InvalidStateError:
            return  # answered meanwhile, or given up by another waiter
        log.warning(
            "could not introspect a token: Globus Auth did not answer within %s s",
            self._timeout,
        )

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
        # Waiters may have given up already (the future failed): an answer
        # that comes late is still cached for the requests after them.
        result: _Outcome | BaseException
        try:
            if self._shared is None:
                result, ttl = self._outcome(token)
            else:
                result, ttl = self._shared_outcome(self._shared, key, token)
            self._remember(key, result, ttl)
        except BaseException as exc:
            result = exc
        # No longer in flight before it is answered: a request that comes
        # after the answer asks anew rather than take an old failure.
        with self._lock:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        settle(future, result)

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
        with shared.hold(key, wait=3 * self._timeout + 1):
            found = shared.get(key, time.time())
            if found is not None:
                expires_at, record = found
                outcome = self._from_record(record, token)
                if outcome is not None:
                    return outcome, expires_at - time.time()
            try:
                outcome, ttl = self._outcome(token)
            except AuthServiceError as exc:
                # Shared failure: the processes waiting on the hold for this
                # token take it rather than ask Globus Auth again.
                shared.put(key, time.time() + self._timeout, failure_record(exc))
                raise
            if ttl > 0:
                shared.put(key, time.time() + ttl, _record(outcome, self.scope))
            return outcome, ttl

    def _from_record(self, record: dict[str, Any], token: str) -> _Outcome | None:
        """The outcome a shared record holds, if this provider may trust it.

        A record counts only when it was written for this provider's scope,
        and an acceptance only when it says the token is active and was
        issued for that scope; anything else is introspected anew.
        """
        if "failed" in record:
            raise failure_from(record)
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
