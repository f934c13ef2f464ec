"""``Provider``: collect a description and handlers, compile them into an app."""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

import orjson

from aptools.auth import Authenticator
from aptools.faces.observe import RequestInfo
from aptools.jobs.engine import J, JobSettings
from aptools.models import DURATION_PATTERN, parse_duration
from aptools.protocol import spec as core
from aptools.protocol.effects import Await, Blocking, Call, ThreadPool, blocking_in
from aptools.schema import PRINCIPAL_PATTERN, compile_request_validator, load_schema
from aptools.store import Store, open_store

if TYPE_CHECKING:
    import falcon
    import falcon.asgi

    from aptools.jobs.engine import JobEngine

__all__ = ["Provider", "ProviderConfigError"]

F = TypeVar("F", bound=Callable[..., Any])
H = TypeVar("H", bound=Callable[["RequestInfo"], None])

_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)
_DURATION = re.compile(DURATION_PATTERN)
DEFAULT_MAX_BODY: Final = 1024 * 1024


class ProviderConfigError(ValueError):
    """A provider is set up wrongly; raised when it is defined or built."""


class Provider:
    """An Action Provider: its description, its handlers, its settings.

    Register plain functions (``def`` or ``async def``) with the decorators,
    then build an app once::

        provider = Provider(
            title="Echo",
            scope="https://auth.globus.org/scopes/<client-id>/action_all",
            admin_contact="admin@example.org",
            input_schema={"type": "object", "properties": {"s": {"type": "string"}}},
            prefix="/echo",
            synchronous=True,
        )

        @provider.run
        def run(request, caller):
            return {"echo": request.body["s"]}

        app = provider.wsgi()    # gunicorn module:app
        asgi = provider.asgi()   # uvicorn module:asgi

    Under ASGI, plain ``def`` handlers run in a worker thread so that blocking
    code never stalls the event loop; ``offload_sync_handlers=False`` runs them
    on the loop instead, which is faster for handlers that never block (or
    write them as ``async def``). The threads are asyncio's default executor's
    (``min(32, CPUs + 4)`` of them, shared with anything else the process
    offloads) unless ``handler_threads`` gives the handlers a pool of their own
    of that size: as many handler calls as that can block at once per process.

    Each request is logged on ``aptools.access`` at INFO (see
    :class:`RequestInfo`) when that logger is enabled as the app is built;
    ``access_log=False`` turns it off for good.

    The client id and secret of the provider's Globus Auth client come from
    ``client_id`` / ``client_secret`` or from ``APTOOLS_CLIENT_ID`` /
    ``APTOOLS_CLIENT_SECRET``. The store is ``store`` (a :class:`Store` or a
    URL), else ``APTOOLS_STORE``, else SQLite in ``./aptools-actions.db``.
    """

    def __init__(
        self,
        *,
        title: str,
        scope: str,
        admin_contact: str,
        input_schema: Mapping[str, Any] | str | Path,
        prefix: str = "/",
        synchronous: bool = False,
        subtitle: str | None = None,
        description: str | None = None,
        keywords: Sequence[str] = (),
        visible_to: Sequence[str] = ("public",),
        runnable_by: Sequence[str] = ("all_authenticated_users",),
        administered_by: Sequence[str] = (),
        maximum_deadline: str = "P30D",
        release_after: str = "P30D",
        event_types: Sequence[str] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        store: Store | str | None = None,
        max_body_size: int = DEFAULT_MAX_BODY,
        echo_input: bool = False,
        token_cache_ttl: float = 60.0,
        token_cache_size: int = 10_000,
        auth_timeout: float = 2.0,
        access_log: bool = True,
        offload_sync_handlers: bool = True,
        handler_threads: int | None = None,
        max_jobs: int = 4,
        job_poll_interval: float = 1.0,
        encryption_key: str | None = None,
    ) -> None:
        _check_text("title", title, 128)
        _check_text("scope", scope, 1024)
        _check_text("admin_contact", admin_contact, 1024)
        if subtitle is not None:
            _check_text("subtitle", subtitle, 128)
        if description is not None:
            _check_text("description", description, 4096)
        if sum(len(k) for k in keywords) > 1024:
            raise ProviderConfigError("keywords may hold 1024 characters in all")
        if not prefix.startswith("/"):
            raise ProviderConfigError(f"prefix must start with '/': {prefix!r}")
        _check_principals("visible_to", visible_to, extra="public")
        _check_principals("runnable_by", runnable_by, extra="all_authenticated_users")
        _check_principals("administered_by", administered_by, extra=None)
        for name, value in (
            ("maximum_deadline", maximum_deadline),
            ("release_after", release_after),
        ):
            if not _DURATION.match(value):
                raise ProviderConfigError(
                    f"{name} must be an ISO 8601 duration such as 'P30D': {value!r}"
                )
        if max_body_size < 1:
            raise ProviderConfigError("max_body_size must be positive")
        if handler_threads is not None and (
            isinstance(handler_threads, bool)
            or not isinstance(handler_threads, int)
            or handler_threads < 1
        ):
            raise ProviderConfigError(
                f"handler_threads must be a positive whole number: {handler_threads!r}"
            )
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
            raise ProviderConfigError(
                f"max_jobs must be a positive whole number: {max_jobs!r}"
            )
        if not job_poll_interval > 0:
            raise ProviderConfigError(
                "job_poll_interval must be a positive number of seconds"
            )
        try:
            schema = load_schema(input_schema)
        except ValueError as exc:
            raise ProviderConfigError(str(exc)) from None
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else "/"
        self.title = title
        self.scope = scope
        self.synchronous = synchronous
        self.input_schema = schema
        self._about: dict[str, Any] = {
            "types": ["Action"],
            "api_version": "1.0",
            "globus_auth_scope": scope,
            "title": title,
            "subtitle": subtitle,
            "description": description,
            "keywords": list(keywords),
            "visible_to": list(visible_to),
            "runnable_by": list(runnable_by),
            "administered_by": list(administered_by),
            "admin_contact": admin_contact,
            "synchronous": synchronous,
            "maximum_deadline": maximum_deadline,
            "input_schema": schema,
            "event_types": list(event_types) if event_types is not None else None,
        }
        self._release_after = release_after
        self._client_id = client_id
        self._client_secret = client_secret
        self._store = store
        self._max_body = max_body_size
        self._echo_input = echo_input
        self._cache = (token_cache_ttl, token_cache_size, auth_timeout)
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._access_log = access_log
        self._offload = offload_sync_handlers
        self._handler_threads = handler_threads
        self._hooks: list[Callable[[RequestInfo], None]] = []
        self._job: tuple[Callable[..., Any], JobSettings] | None = None
        self._job_settings = (max_jobs, job_poll_interval)
        self._encryption_key = encryption_key
        self._spec: core.Spec | None = None
        # Fail now rather than at the first request.
        self._validator = _compile(schema, echo_input)

    # -- registration -----------------------------------------------------------

    def _register(self, name: str, fn: F) -> F:
        if self._spec is not None:
            raise ProviderConfigError(
                f"cannot register a {name} handler: the app was already built"
            )
        if name in self._handlers:
            raise ProviderConfigError(
                f"a {name} handler is already registered "
                f"({_where(self._handlers[name])}); register one per operation"
            )
        if not callable(fn):
            raise ProviderConfigError(f"the {name} handler must be callable")
        self._handlers[name] = fn
        return fn

    def after_request(self, fn: H) -> H:
        """Register a hook called with a :class:`RequestInfo` after every request.

        For metrics and the like; it runs on the request's thread (or event
        loop), so keep it quick. Exceptions it raises are logged and ignored::

            @provider.after_request
            def count(info: RequestInfo) -> None:
                REQUESTS.labels(info.operation, info.status).inc()
        """
        if self._spec is not None:
            raise ProviderConfigError(
                "cannot add a request hook: the app was already built"
            )
        self._hooks.append(fn)
        return fn

    @overload
    def job(self, fn: J, /) -> J: ...
    @overload
    def job(
        self,
        /,
        *,
        resumable: bool = False,
        lease: float = 30.0,
        keep_tokens: bool = False,
    ) -> Callable[[J], J]: ...
    def job(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        resumable: bool = False,
        lease: float = 30.0,
        keep_tokens: bool = False,
    ) -> Any:
        """Register the background job: ``fn(action, caller, job)``, ``def`` or
        ``async def`` (see :mod:`aptools.jobs`).

        run then stores the action ACTIVE, answers 202 at once, and the job
        runs it in the background (a run handler, if registered, gives the
        first state). Return the SUCCEEDED details, raise :class:`ActionFailed`
        to end it FAILED; any other exception ends it FAILED with a generic
        description (the traceback goes to the ``aptools.jobs`` log).

        ``lease`` (seconds): a job whose process died is taken over after at
        most this long. ``resumable``: the take-over starts it again with its
        last checkpoint; otherwise the action ends FAILED ("Interrupted").
        ``keep_tokens``: ``caller.authorizer(scope)`` keeps working for the
        whole job, after the caller's token expired and after a take-over
        (dependent refresh tokens, encrypted with ``encryption_key`` or
        ``APTOOLS_ENCRYPTION_KEY``, a Fernet key)::

            @provider.job(resumable=True, lease=10.0)
            def work(action: Action, caller: Caller, job: Job) -> dict[str, int]:
                ...
        """
        if not lease > 0:
            raise ProviderConfigError(
                "a job's lease must be a positive number of seconds"
            )
        max_jobs, poll = self._job_settings
        settings = JobSettings(resumable, float(lease), max_jobs, poll, keep_tokens)

        def register(fn: F) -> F:
            self._register("job", fn)
            self._job = (fn, settings)
            return fn

        return register if fn is None else register(fn)

    def run(self, fn: F) -> F:
        """Register the run handler (required): ``fn(request, caller)``.

        Return a dict (the details of a SUCCEEDED action), an
        :class:`ActionStatus`, or raise :class:`ActionFailed`.
        """
        return self._register("run", fn)

    def status(self, fn: F) -> F:
        """Register a status handler: ``fn(action, caller)``.

        It is called for actions not yet finished, with the stored action,
        and answers like run; returning ``None`` keeps the action as it is.
        Without one, status answers the stored action.
        """
        return self._register("status", fn)

    def cancel(self, fn: F) -> F:
        """Register a cancel handler: ``fn(action, caller)``.

        Without one, cancel makes an unfinished action FAILED with
        ``display_status`` "Canceled".
        """
        return self._register("cancel", fn)

    def release(self, fn: F) -> F:
        """Register a release hook: ``fn(action, caller)``, called before a
        finished action is deleted (to clean up what it left behind)."""
        return self._register("release", fn)

    def log(self, fn: F) -> F:
        """Register a log handler: ``fn(action, caller, query)`` returning a
        :class:`LogPage` or a list of :class:`LogEntry`. Enables the log route."""
        return self._register("log", fn)

    def enumerate(self, fn: F) -> F:
        """Register an enumerate handler: ``fn(query, caller)``.

        ``query.actions`` holds the stored actions the caller may see that
        match the request's filters; return those to answer (refreshed if you
        like). Enables ``GET /actions``.
        """
        return self._register("enumerate", fn)

    def resume(self, fn: F) -> F:
        """Register a resume handler: ``fn(action, caller)``. Enables resume."""
        return self._register("resume", fn)

    # -- building -----------------------------------------------------------------

    @property
    def description(self) -> dict[str, Any]:
        """The provider description served at the root of the prefix."""
        about = {k: v for k, v in self._about.items() if v is not None}
        about["log_supported"] = "log" in self._handlers or self._job is not None
        return about

    def compile(self) -> core.Spec:
        """Build (once) everything requests need; both apps share it."""
        if self._spec is not None:
            return self._spec
        if "run" not in self._handlers and self._job is None:
            raise ProviderConfigError(
                f"provider {self.title!r} has no run handler: decorate a function "
                "with @provider.run (or @provider.job)"
            )
        if self._job is not None and "log" not in self._handlers:
            from aptools.jobs.engine import job_log

            self._handlers["log"] = job_log
        client_id = self._client_id or os.environ.get("APTOOLS_CLIENT_ID")
        secret = self._client_secret or os.environ.get("APTOOLS_CLIENT_SECRET")
        if not client_id:
            raise ProviderConfigError(
                "no Globus Auth client id: pass client_id= or set APTOOLS_CLIENT_ID"
            )
        if not secret:
            raise ProviderConfigError(
                "no Globus Auth client secret: pass client_secret= or set "
                "APTOOLS_CLIENT_SECRET"
            )
        store = (
            self._store if isinstance(self._store, Store) else open_store(self._store)
        )
        ttl, size, timeout = self._cache
        auth = Authenticator(
            client_id=client_id,
            client_secret=secret,
            scope=self.scope,
            cache_ttl=ttl,
            cache_size=size,
            timeout=timeout,
            shared=store.introspections(),
        )
        # Under ASGI a plain def handler runs in a worker thread unless the
        # author vouches that it never blocks (under WSGI both run in place).
        offload = (
            Blocking
            if self._handler_threads is None
            else blocking_in(ThreadPool(self._handler_threads))
        )
        plain = offload if self._offload else Call
        handlers = {
            name: core.Handler(fn, Await if _is_async(fn) else plain)
            for name, fn in self._handlers.items()
            if name != "job"
        }
        jobs = None if self._job is None else self._engine(store, auth)
        self._spec = core.Spec(
            # PERF: the description never changes; serialize it once.
            description=orjson.dumps(self.description),
            openapi=orjson.dumps(self.openapi()),
            visible=core.Access.of(self._about["visible_to"], "public"),
            runnable=core.Access.of(
                self._about["runnable_by"], "all_authenticated_users"
            ),
            auth=auth,
            store=store,
            store_effect=Blocking if store.io_bound else Call,
            validate=self._validator,
            handlers=handlers,
            synchronous=self.synchronous,
            max_body=self._max_body,
            release_after=self._release_after,
            max_deadline=parse_duration(self._about["maximum_deadline"]),
            access_log=self._access_log,
            hooks=tuple(self._hooks),
            jobs=jobs,
        )
        return self._spec

    def _engine(self, store: Store, auth: Authenticator) -> JobEngine:
        from aptools.jobs.engine import JobEngine

        assert self._job is not None
        fn, settings = self._job
        queue = store.jobs()
        if queue is None:
            raise ProviderConfigError(
                f"the store {type(store).__name__} cannot hold background jobs"
            )
        fernet = None
        if settings.keep_tokens:
            from aptools.jobs.tokens import load_key

            try:
                fernet = load_key(self._encryption_key)
            except ValueError as exc:
                raise ProviderConfigError(str(exc)) from None
        return JobEngine(
            fn,
            settings,
            store=store,
            queue=queue,
            auth=auth,
            max_deadline=parse_duration(self._about["maximum_deadline"]),
            is_async=_is_async(fn),
            fernet=fernet,
        )

    def openapi(self) -> dict[str, Any]:
        """The provider's OpenAPI 3.1 document (also served at
        ``{prefix}/openapi.json``)."""
        from aptools.protocol.openapi import openapi_document
        from aptools.protocol.routes import route_table

        routes = route_table(self._handlers, self.prefix)
        return openapi_document(
            self.description,
            [(path, list(methods)) for path, methods in routes],
            {
                (path, method): name
                for path, methods in routes
                for method, (_op, _headers, name) in methods.items()
            },
        )

    def wsgi(self) -> falcon.App[falcon.Request, falcon.Response]:
        """A Falcon WSGI app, e.g. for ``gunicorn module:app``."""
        from aptools.faces import build_wsgi

        spec = self.compile()
        app = build_wsgi(spec, self.prefix)
        if spec.jobs is not None:
            from aptools.jobs.serving import JobStarter

            app.add_middleware(JobStarter(spec.jobs))
        return app

    def asgi(self) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
        """A Falcon ASGI app, e.g. for ``uvicorn module:asgi``."""
        from aptools.faces import build_asgi

        spec = self.compile()
        app = build_asgi(spec, self.prefix)
        if spec.jobs is not None:
            from aptools.jobs.serving import JobStarter

            app.add_middleware(JobStarter(spec.jobs))
        return app

    @property
    def jobs(self) -> JobEngine | None:
        """This provider's job engine (``None`` without a job): ``.runner()``
        starts this process's runner, ``.shutdown()`` hands its jobs back."""
        return self.compile().jobs

    @property
    def store(self) -> Store:
        """The action store (opened when the provider is compiled)."""
        return self.compile().store

    @property
    def handlers(self) -> Mapping[str, Callable[..., Any]]:
        """The registered handlers by operation name."""
        return dict(self._handlers)


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


def _where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    name = getattr(fn, "__qualname__", repr(fn))
    return f"{name} at {code.co_filename}:{code.co_firstlineno}" if code else name


def _compile(schema: Mapping[str, Any], echo_input: bool) -> Callable[[Any], Any]:
    try:
        return compile_request_validator(schema, echo_input=echo_input)
    except ValueError as exc:
        raise ProviderConfigError(str(exc)) from None


def _check_text(name: str, value: str, most: int) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= most:
        raise ProviderConfigError(f"{name} must be a string of 1 to {most} characters")


def _check_principals(name: str, values: Iterable[str], *, extra: str | None) -> None:
    if isinstance(values, str):
        raise ProviderConfigError(
            f"{name} must be a list of principal URNs, not a string"
        )
    for value in values:
        if value != extra and not _PRINCIPAL.match(value):
            allowed = f" or {extra!r}" if extra else ""
            raise ProviderConfigError(
                f"{name}: {value!r} is not a principal URN (urn:globus:auth:"
                f"identity:<uuid> or urn:globus:groups:id:<uuid>){allowed}"
            )
