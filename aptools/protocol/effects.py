"""The protocol core's I/O, described once and performed by either face.

The rule of the core is written in :mod:`aptools.protocol`; this module holds
the effects an operation may yield and :class:`StoreCall`, the one way an
operation calls the store.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import falcon
import falcon.asgi

from aptools.auth import Authenticator, Caller
from aptools.errors import BadRequest
from aptools.protocol.handoff import Workers, default_workers

if TYPE_CHECKING:
    from aptools.store import Store

T = TypeVar("T")


Op = Generator["Effect", Any, T]


class Effect:
    """Something an operation needs done; performed by a driver."""

    __slots__ = ()

    def run(self) -> Any:
        raise NotImplementedError

    async def run_async(self) -> Any:
        raise NotImplementedError


class Call(Effect):
    """A quick call that never waits: made in place by both drivers."""

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn = fn
        self.args = args

    def run(self) -> Any:
        return self.fn(*self.args)

    async def run_async(self) -> Any:
        return self.fn(*self.args)


class Blocking(Call):
    """A call that may block: made in a worker thread under ASGI.

    The thread comes from the process's shared pool
    (:func:`~aptools.protocol.handoff.default_workers`), or from the pool of a
    subclass made by :func:`blocking_in`.
    """

    __slots__ = ()
    threads: ClassVar[Workers | None] = None

    async def run_async(self) -> Any:
        # In the request's context (as asyncio.to_thread does), so that log
        # records and trace spans made in the thread know their request.
        workers = self.threads or default_workers()
        return await workers.call(self.fn, *self.args)


def blocking_in(threads: Workers) -> type[Blocking]:
    """:class:`Blocking`, run in ``threads`` under ASGI."""
    return type("Blocking", (Blocking,), {"__slots__": (), "threads": threads})


_local = threading.local()


def _loop() -> asyncio.AbstractEventLoop:
    # One loop per WSGI thread, kept for the thread's life, so an async
    # handler's clients (and their connection pools) survive between requests.
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop


class Await(Call):
    """A call of an ``async def`` function."""

    __slots__ = ()

    def run(self) -> Any:
        # PERF: run_until_complete on the kept loop costs a quarter of what
        # asyncio.Runner.run does per call (no signal or context set-up).
        return _loop().run_until_complete(self.fn(*self.args))

    async def run_async(self) -> Any:
        return await self.fn(*self.args)


class Sleep(Effect):
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self) -> None:
        time.sleep(self.seconds)

    async def run_async(self) -> None:
        await asyncio.sleep(self.seconds)


class Authenticate(Effect):
    """Introspect a token not in the cache (one introspection per token)."""

    __slots__ = ("auth", "key", "token")

    def __init__(self, auth: Authenticator, key: bytes, token: str) -> None:
        self.auth = auth
        self.key = key
        self.token = token

    def run(self) -> Caller:
        return self.auth.authenticate(self.key, self.token)

    async def run_async(self) -> Caller:
        return await self.auth.authenticate_async(self.key, self.token)


class ReadBody(Effect):
    """At most ``limit + 1`` bytes of the request body.

    With a ``Content-Length``, that many bytes (at most). Without one — a
    chunked body (``Transfer-Encoding: chunked``), which a WSGI server
    de-chunks — the stream is read to its end, stopping past ``limit``, as
    the ASGI face does. A WSGI body with neither is empty (PEP 3333: reading
    past ``CONTENT_LENGTH`` may block).
    """

    __slots__ = ("limit", "req")

    def __init__(self, req: falcon.Request | falcon.asgi.Request, limit: int) -> None:
        self.req = req
        self.limit = limit

    def run(self) -> bytes:
        req: Any = self.req
        try:
            return self._read(req)
        except Exception:  # the server's own framing error, whatever its class
            raise BadRequest(_UNREADABLE) from None

    def _read(self, req: Any) -> bytes:
        length = req.content_length
        if length is not None:
            return read_declared(req.stream, min(length, self.limit + 1))
        if not _streamed(req):
            return b""  # PEP 3333: reading past CONTENT_LENGTH may block
        stream, wanted, parts = req.stream, self.limit + 1, []
        while wanted > 0:
            part = stream.read(min(wanted, 65536))
            if not part:
                break
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    async def run_async(self) -> bytes:
        req: Any = self.req
        data: bytes = await req.stream.read(self.limit + 1)
        return data


def read_declared(stream: Any, length: int) -> bytes:
    """The ``length`` bytes a ``Content-Length`` declared, read from a WSGI
    ``stream``; :class:`~aptools.BadRequest` when fewer come (the client
    closed first: an incomplete message, RFC 9112 section 8) or the server
    cannot read them."""
    try:
        data: bytes = stream.read(length)
    except Exception:  # the server's own framing error, whatever its class
        raise BadRequest(_UNREADABLE) from None
    if len(data) < length:
        raise BadRequest(_UNREADABLE)
    return data


_UNREADABLE = (
    "The request body could not be read: it ended before its Content-Length"
    " or its chunked framing is malformed (RFC 9112 sections 6 and 7.1)."
)


def _streamed(req: Any) -> bool:
    """Whether a WSGI request's body runs to the end of its stream."""
    coding = req.get_header("Transfer-Encoding")
    return bool(
        (coding and "chunked" in coding.lower()) or req.env.get("wsgi.input_terminated")
    )


class StoreCall:
    """How operations call the store, decided once when the provider is built.

    ``result = yield from spec.store_call(spec.store.get, action_id, now)``
    is the only way an operation reaches the store. Which way the call is
    made depends on the store alone, so it is chosen by :func:`store_call`:

    - a local store (``io_bound`` false: memory, SQLite) is called in place,
      with no effect and no driver round trip;
    - a store that waits on the network (``io_bound``) is called in a worker
      thread under ASGI (in place under WSGI), as a :class:`Blocking` effect;
    - a store whose methods are ``async def`` is awaited (:class:`Await`).

    :meth:`now` makes a call at once, without yielding: for clean-up while an
    operation is being closed (``GeneratorExit``), when it may not yield.
    ``in_place`` says whether calls are made in place: only then may a
    route's fast path (:class:`~aptools.protocol.routes.Route`) read the
    store directly.
    """

    __slots__ = ()
    in_place: ClassVar[bool] = False

    def __call__(self, fn: Callable[..., T], *args: Any) -> Op[T]:
        raise NotImplementedError

    def now(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(*args)`` in place, whatever the store (blocking if need be).

        An ``async def`` store method is run to its end on this thread's loop,
        or, when an event loop is running here (a closing ASGI request),
        started as a task on it: its result is then not waited for.
        """
        result = fn(*args)
        if not asyncio.iscoroutine(result):
            return result
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return _loop().run_until_complete(result)
        task = running.create_task(result)
        _pending.add(task)
        task.add_done_callback(_pending.discard)
        return None


# Tasks started by StoreCall.now, kept until done (the loop holds them weakly).
_pending: set[asyncio.Task[Any]] = set()


class _InPlace(StoreCall):
    __slots__ = ()
    in_place = True

    def __call__(self, fn: Callable[..., T], *args: Any) -> Op[T]:
        # PERF: a local store answers in place; the dead yield makes this a
        # generator for ``yield from`` without an effect round trip (a
        # generator costs about a third of what a Call effect through the
        # driver costs).
        return fn(*args)
        yield  # pragma: no cover


class _Effected(StoreCall):
    __slots__ = ("effect",)

    def __init__(self, effect: type[Call]) -> None:
        self.effect = effect

    def __call__(self, fn: Callable[..., T], *args: Any) -> Op[T]:
        result: T = yield self.effect(fn, *args)
        return result


def store_call(store: Store) -> StoreCall:
    """The :class:`StoreCall` for ``store``: in place, in a thread, or awaited."""
    if asyncio.iscoroutinefunction(store.get):
        return _Effected(Await)
    if store.io_bound:
        return _Effected(Blocking)
    return _InPlace()
