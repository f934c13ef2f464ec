"""Building a :class:`~aptools.Provider`: its compiled core and its apps.

:class:`AppBuilder` is the half of :class:`~aptools.Provider` that turns the
settings and the registered handlers into the :class:`~aptools.protocol.spec.Spec`
every request uses (once), the WSGI and ASGI apps, and the OpenAPI document.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from aptools.auth import Authenticator
from aptools.execution import Execution
from aptools.models import parse_duration
from aptools.page import compile_page
from aptools.protocol import spec as core
from aptools.protocol.effects import store_call
from aptools.protocol.handlers import handler_table
from aptools.protocol.runrate import supported
from aptools.settings import (
    ProviderConfigError,
    base_url,
    client_credentials,
    server_url,
)
from aptools.store import Store, open_store
from aptools.telemetry import build as build_telemetry
from aptools.vocabulary import ALL_AUTHENTICATED, PUBLIC

if TYPE_CHECKING:
    import falcon
    import falcon.asgi

    from aptools.faces.observe import RequestInfo
    from aptools.jobs.engine import JobEngine
    from aptools.jobs.setup import JobDeclaration

__all__ = ["AppBuilder"]


class AppBuilder:
    """Compiles a provider (see :class:`~aptools.Provider` for the settings)."""

    # Set by Provider.__init__ and its decorators.
    prefix: str
    title: str
    scope: str
    synchronous: bool
    _about: dict[str, Any]
    _release_after: str
    _client_id: str | None
    _client_secret: str | None
    _store: Store | str | None
    _namespace: str
    _max_body: int
    _run_lease: float
    _pending_wait: float
    _cache: tuple[float, int, float]
    _handlers: dict[str, Callable[..., Any]]
    _access_log: bool
    _offload: bool
    _handler_threads: int | None
    _public_url: str | None
    _hooks: list[Callable[[RequestInfo], None]]
    _telemetry: tuple[Any, Any]
    _jobs: JobDeclaration
    _per_caller: int | None
    _run_rate: tuple[int, float] | None
    _spec: core.Spec | None
    _validator: Any

    @property
    def description(self) -> dict[str, Any]:
        """The description document (defined by :class:`~aptools.Provider`)."""
        raise NotImplementedError

    def compile(self) -> core.Spec:
        """Build (once) everything requests need; both apps share it."""
        if self._spec is not None:
            return self._spec
        if "run" not in self._handlers and "job" not in self._handlers:
            raise ProviderConfigError(
                f"provider {self.title!r} has no run handler: decorate a function "
                "with @provider.run (or @provider.job)"
            )
        if "job" in self._handlers and "log" not in self._handlers:
            from aptools.jobs.engine import job_log

            self._handlers["log"] = job_log
        client_id, secret = client_credentials(self._client_id, self._client_secret)
        try:
            opened = (
                self._store
                if isinstance(self._store, Store)
                else open_store(self._store)
            )
        except ValueError as exc:
            raise ProviderConfigError(str(exc)) from None
        store = opened.for_provider(self._namespace)
        supported(store, self._run_rate)
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
        auth.prepare()
        handlers = handler_table(
            {n: fn for n, fn in self._handlers.items() if n != "job"},
            self._offload,
            self._handler_threads,
        )
        max_deadline = parse_duration(self._about["maximum_deadline"])
        jobs = self._jobs.engine(store, auth, max_deadline)
        if jobs is not None:
            jobs.per_caller = self._per_caller
        description = self.description
        # Decided once: when nothing records, the app is built as without it.
        telemetry = build_telemetry(*self._telemetry)
        calls = store_call(store)
        if telemetry is not None:
            auth.observe = telemetry.auth_call
            if jobs is not None:
                jobs.observe(telemetry)
            calls = telemetry.store_call(calls)
        self._spec = core.Spec(
            # PERF: the description never changes; serialize it once.
            description=orjson.dumps(description),
            openapi=orjson.dumps(self.openapi()),
            # The page too is rendered once (see aptools.page).
            page=compile_page(
                description,
                prefix=self.prefix,
                base_url=self._base_url(),
                dependent_scopes=self._dependent_scopes(),
                check_body=self._check_body,
            ),
            visible=core.Access.of(self._about["visible_to"], PUBLIC),
            runnable=core.Access.of(self._about["runnable_by"], ALL_AUTHENTICATED),
            administrators=core.Access.of(self._about["administered_by"], PUBLIC),
            auth=auth,
            store=store,
            store_call=calls,
            execution=Execution(store, jobs=jobs, run_lease=self._run_lease),
            validate=self._validator,
            handlers=handlers,
            synchronous=self.synchronous,
            max_body=self._max_body,
            release_after=self._release_after,
            max_deadline=max_deadline,
            access_log=self._access_log,
            run_lease=self._run_lease,
            pending_wait=self._pending_wait,
            hooks=tuple(self._hooks),
            jobs=jobs,
            run_rate=self._run_rate,
            telemetry=telemetry,
        )
        return self._spec

    def _check_body(self, body: Any) -> None:
        self._validator({"request_id": "example", "body": body})

    def _base_url(self) -> str:
        """The server's URL: the provider's routes are this plus their paths
        (``public_url`` read by :func:`aptools.settings.server_url`)."""
        public = self._public_url or base_url(os.environ.get("APTOOLS_PUBLIC_URL"))
        return server_url(public, self.prefix)

    def _dependent_scopes(self) -> tuple[str, ...]:
        """The scopes the provider declares it acts under for its callers
        (``dependent_scopes=`` and its job's ``scopes``), listed on the
        provider page. A scope not declared is asked for when
        ``caller.authorizer(scope)`` first uses it."""
        return self._jobs.scopes()

    def openapi(self) -> dict[str, Any]:
        """The provider's OpenAPI 3.1 document (also served at
        ``{prefix}/openapi.json``). Its ``servers`` URL comes from
        ``public_url`` (else ``APTOOLS_PUBLIC_URL``, else ``/``) by
        :func:`aptools.settings.server_url`: ``servers[0].url`` followed by
        a path reaches that route of this provider."""
        from aptools.protocol.openapi import openapi_document
        from aptools.protocol.routes import route_table

        return openapi_document(
            self.description,
            route_table(self._handlers),
            self.prefix,
            base_url=self._base_url(),
            dependent_scopes=self._dependent_scopes(),
        )

    def wsgi(self) -> falcon.App[falcon.Request, falcon.Response]:
        """A Falcon WSGI app, e.g. for ``gunicorn module:app``."""
        from aptools.faces import build_wsgi

        spec = self.compile()
        app = build_wsgi(spec, self.prefix)
        if spec.jobs is not None:
            from aptools.jobs.serving import JobStarter

            app.add_middleware(JobStarter(spec.execution))
        return app

    def asgi(self) -> falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]:
        """A Falcon ASGI app, e.g. for ``uvicorn module:asgi``."""
        from aptools.faces import build_asgi

        spec = self.compile()
        app = build_asgi(spec, self.prefix)
        if spec.jobs is not None:
            from aptools.jobs.serving import JobStarter

            app.add_middleware(JobStarter(spec.execution))
        return app

    @property
    def jobs(self) -> JobEngine | None:
        """This provider's job engine (``None`` without a job): ``.runner()``
        starts this process's runner, ``.shutdown()`` hands its jobs back."""
        return self.compile().jobs

    @property
    def store(self) -> Store:
        """The store the app serves from.

        The store belongs to the compiled provider, so reading this property
        compiles the provider (once, as :meth:`wsgi` and :meth:`asgi` do):
        it needs the run handler and the client credentials, and opens the
        store (creating a SQLite file if there is none). Read it after
        building the app, e.g. in tests.
        """
        return self.compile().store
