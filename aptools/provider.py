"""``Provider``: collect a description and handlers, compile them into an app
(the compiling half is :class:`aptools.apps.AppBuilder`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

from aptools.apps import AppBuilder
from aptools.faces.observe import RequestInfo
from aptools.jobs.fairshare import check_per_caller
from aptools.jobs.settings import J
from aptools.jobs.setup import JobDeclaration
from aptools.protocol import spec as core
from aptools.protocol.runrate import check_run_rate
from aptools.settings import (
    DEFAULT_MAX_BODY,
    ProviderConfigError,
    base_url,
    check_settings,
    compile_validator,
    load_input_schema,
)
from aptools.store import Store
from aptools.typing import (
    CancelF,
    EnumerateF,
    LogF,
    ReleaseF,
    ResumeF,
    RunF,
    StatusF,
    check_signature,
    where,
)

__all__ = ["Provider", "ProviderConfigError"]

F = TypeVar("F", bound=Callable[..., Any])
H = TypeVar("H", bound=Callable[["RequestInfo"], None])


class Provider(AppBuilder):
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

    Settings (keywords only; "duration" means ISO 8601 text such as ``"P30D"``
    or ``"PT1H"``; the limits on text come from the Action Provider
    Interface's description document):

    The description (served at the prefix's root, ``GET {prefix}/``):

    - ``title`` (1-128 characters), ``subtitle`` (1-128), ``description``
      (1-4096), ``keywords`` (1024 characters in all): what callers read.
    - ``scope``: the provider's Globus Auth scope string; tokens must carry it.
    - ``admin_contact``: whom to contact (1-1024 characters).
    - ``input_schema``: the JSON Schema of a run's ``body`` (a mapping, JSON
      text, or a path to a JSON file); compiled at definition.
    - ``visible_to``: principal URNs, or ``"public"``, who may read the
      description and the OpenAPI document. Default ``("public",)``.
    - ``runnable_by``: principal URNs, or ``"all_authenticated_users"``, who
      may run. Default ``("all_authenticated_users",)``.
    - ``administered_by``: principal URNs listed as administrators; they
      (identities and groups) may read the job console at ``GET
      {prefix}/jobs`` (:mod:`aptools.jobs.console`); anyone else gets 404.
    - ``synchronous``: ``True`` if run always finishes the action before it
      answers (a run handler that does not is an error). Default ``False``.
    - ``maximum_deadline``: duration; the latest ``deadline`` a run may ask
      for, counted from now (later is 422). Default ``"P30D"``.
    - ``event_types``: the event types the provider announces, or ``None``.

    Serving:

    - ``prefix``: the URL path the provider is served under. Default ``/``.
    - ``release_after``: duration; how long a finished action is kept before
      it is deleted, unless a run asks for another. Default ``"P30D"``.
    - ``store``: a :class:`Store`, or a store URL (``memory:``,
      ``sqlite:///path/file.db``); default ``APTOOLS_STORE``, else SQLite
      in ``./aptools-actions.db``.
    - ``max_body_size``: bytes; the largest run request body (larger is
      413). Default 1 MiB.
    - ``run_lease``: seconds a request key outlives its holder's process
      (renewed while its run handler runs); ``pending_wait``: seconds a run
      of the same request waits for it before 409. Defaults 10 and 30.
    - ``echo_input``: ``True`` to quote the caller's offending input in
      validation errors (by default it is never repeated back or logged).
    - ``access_log``: ``False`` turns the per-request log line (INFO on
      ``aptools.access``, see :class:`RequestInfo`) off for good.
    - ``max_runs_per_caller``: ``(runs, seconds)``, or ``None`` (the
      default: no limit). Each caller identity may start ``runs`` runs at
      once, then one every ``seconds / runs`` seconds (a token bucket the
      store keeps: shared by every process and host using it; in process
      for ``memory:``). A run beyond it answers 429
      (:class:`TooManyRequests`) with ``Retry-After`` (whole seconds) and
      keeps nothing; the replay of an accepted request is never refused
      (:mod:`aptools.protocol.runrate`).
    - ``offload_sync_handlers``, ``handler_threads``: how ``def`` handlers
      run under ASGI (below).
    - ``tracer_provider``, ``meter_provider``: OpenTelemetry's, to record
      spans and metrics with instead of the global ones (see
      :mod:`aptools.telemetry`; needs ``aptools[otel]``).

    Globus Auth:

    - ``client_id``, ``client_secret``: the provider's Globus Auth client;
      default ``APTOOLS_CLIENT_ID`` / ``APTOOLS_CLIENT_SECRET``.
    - ``token_cache_ttl``: seconds an introspected token's answer is reused
      (never past the token's own expiry). Default 60.
    - ``token_cache_size``: how many tokens' answers are kept per process.
      Default 10,000.
    - ``auth_timeout``: seconds to wait for Globus Auth per call (then 503).
      Default 2.

    Under ASGI, plain ``def`` handlers run in a worker thread so that blocking
    code never stalls the event loop; ``offload_sync_handlers=False`` runs them
    on the loop instead, which is faster for handlers that never block (or
    write them as ``async def``). The threads are a pool of aptools' own
    (:func:`~aptools.protocol.handoff.default_workers`: ``min(32, CPUs + 4)``
    of them per process, shared by every blocking call of the process's
    providers) unless ``handler_threads`` gives the handlers a pool of their
    own of that size: as many handler calls as that can block at once per
    process.

    The client id and secret of the provider's Globus Auth client come from
    ``client_id`` / ``client_secret`` or from ``APTOOLS_CLIENT_ID`` /
    ``APTOOLS_CLIENT_SECRET``. The store is ``store`` (a :class:`Store` or a
    URL), else ``APTOOLS_STORE``, else SQLite in ``./aptools-actions.db``.
    ``public_url`` (else ``APTOOLS_PUBLIC_URL``, else ``/``) is where clients
    reach the provider: its own URL ending in ``prefix``
    (``https://ap.example.org/skeleton``, a Flow's ``action_url``) or the
    server's root (``https://ap.example.org``); the OpenAPI document's server
    is worked out from it (:func:`aptools.settings.server_url`).
    The provider keeps its actions, request ids and shared token
    introspections there under ``store_namespace`` (by default
    ``f"{scope} {prefix}"``), so providers sharing a store never see each
    other's; give two providers one namespace only to share their actions.

    Mistakes in the settings or in a handler's signature raise
    :class:`ProviderConfigError` when the provider is defined or a handler
    registered; a missing run handler or client credentials, when it is
    built (:meth:`compile`, :meth:`wsgi`, :meth:`asgi`).
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
        store_namespace: str | None = None,
        max_body_size: int = DEFAULT_MAX_BODY,
        run_lease: float = 10.0,
        pending_wait: float = 30.0,
        echo_input: bool = False,
        token_cache_ttl: float = 60.0,
        token_cache_size: int = 10_000,
        auth_timeout: float = 2.0,
        access_log: bool = True,
        offload_sync_handlers: bool = True,
        handler_threads: int | None = None,
        public_url: str | None = None,
        max_jobs: int = 4,
        max_jobs_per_caller: int | None = None,
        max_runs_per_caller: tuple[int, float] | None = None,
        job_poll_interval: float = 1.0,
        encryption_key: str | None = None,
        dependent_scopes: Sequence[str] = (),
        tracer_provider: Any = None,
        meter_provider: Any = None,
    ) -> None:
        check_settings(
            title=title,
            scope=scope,
            admin_contact=admin_contact,
            prefix=prefix,
            subtitle=subtitle,
            description=description,
            keywords=keywords,
            visible_to=visible_to,
            runnable_by=runnable_by,
            administered_by=administered_by,
            maximum_deadline=maximum_deadline,
            release_after=release_after,
            max_body_size=max_body_size,
            handler_threads=handler_threads,
            store_namespace=store_namespace,
            run_lease=run_lease,
            pending_wait=pending_wait,
        )
        self._jobs = JobDeclaration(
            max_jobs, job_poll_interval, encryption_key, dependent_scopes
        )
        self._per_caller = check_per_caller(max_jobs_per_caller)
        self._run_rate = check_run_rate(max_runs_per_caller)
        schema = load_input_schema(input_schema, stacklevel=3)
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
        self._namespace = store_namespace or f"{scope} {self.prefix}"
        self._max_body = max_body_size
        self._run_lease, self._pending_wait = float(run_lease), float(pending_wait)
        self._echo_input = echo_input
        self._cache = (token_cache_ttl, token_cache_size, auth_timeout)
        self._handlers: dict[str, Callable[..., Any]] = {}
        self._access_log = access_log
        self._offload = offload_sync_handlers
        self._handler_threads = handler_threads
        self._public_url = None if public_url is None else base_url(public_url)
        self._hooks: list[Callable[[RequestInfo], None]] = []
        self._telemetry = (tracer_provider, meter_provider)
        self._spec: core.Spec | None = None
        # Fail now rather than at the first request.
        self._validator = compile_validator(schema, echo_input)

    def _register(self, name: str, fn: F) -> F:
        """Record ``fn`` as the ``name`` handler; refuse what could not serve."""
        if self._spec is not None:
            raise ProviderConfigError(
                f"cannot register a {name} handler: the app was already built"
            )
        if name in self._handlers:
            raise ProviderConfigError(
                f"a {name} handler is already registered "
                f"({where(self._handlers[name])}); register one per operation"
            )
        if not callable(fn):
            raise ProviderConfigError(f"the {name} handler must be callable")
        problem = check_signature(name, fn)
        if problem is not None:
            raise ProviderConfigError(f"{problem} ({where(fn)})")
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
        scopes: Sequence[str] = (),
        max_attempts: int = 10,
        stop_timeout: float = 25.0,
    ) -> Callable[[J], J]: ...
    def job(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        resumable: bool = False,
        lease: float = 30.0,
        keep_tokens: bool = False,
        scopes: Sequence[str] = (),
        max_attempts: int = 10,
        stop_timeout: float = 25.0,
    ) -> Any:
        """Register the background job: ``fn(action, caller, job)``, ``def`` or
        ``async def`` (see :mod:`aptools.jobs`).

        run then stores the action ACTIVE, answers 202 at once, and the job
        runs it in the background (a run handler, if registered, gives the
        first state). Return the SUCCEEDED details, raise :class:`ActionFailed`
        to end it FAILED; any other exception ends it FAILED with a generic
        description (the traceback goes to the ``aptools.jobs`` log).

        ``lease`` (seconds, default 30): how long a claim holds without a
        heartbeat; the process holding the job renews it every ``lease / 3``
        seconds. A job whose process died (or could not renew, say during a
        store outage longer than the lease) is free once its lease ran out,
        at most ``lease`` seconds after the last renewal, and taken over by
        the next look for jobs of a running process: up to
        ``job_poll_interval`` seconds later. ``resumable``: the take-over
        starts it again with its last checkpoint (``job.attempt`` counts the
        claims); otherwise the action ends FAILED ("Interrupted").
        ``max_attempts`` (default 10): a job whose process ended while
        running it (a take-over after a crash, a hand-back at SIGTERM) this
        many times ends FAILED ("Interrupted"). ``stop_timeout`` (seconds,
        default 25): at SIGTERM a job that is not resumable may go on this
        long, then ends FAILED ("Interrupted"); a resumable one is handed
        back at once.
        ``keep_tokens``: ``caller.authorizer(scope)`` keeps working for the
        whole job, after the caller's token expired and after a take-over
        (dependent refresh tokens, encrypted with ``encryption_key`` or
        ``APTOOLS_ENCRYPTION_KEY``, Fernet keys newest first). ``scopes``
        (with ``keep_tokens``): the scopes it acts under, granted when the
        run is accepted (see :attr:`dependent_scopes`).
        The provider's ``max_jobs_per_caller`` (a positive whole number,
        default ``None``: no cap) caps one caller identity's jobs running at
        once across every process and host; their further actions are
        accepted and wait their turn (:mod:`aptools.jobs.fairshare`)::

            @provider.job(resumable=True, lease=10.0)
            def work(action: Action, caller: Caller, job: Job) -> dict[str, int]:
                ...
        """
        settings = self._jobs.settings(
            resumable, lease, keep_tokens, scopes, max_attempts, stop_timeout
        )

        def register(fn: F) -> F:
            self._register("job", fn)
            self._jobs.declare(fn, settings)
            return fn

        return register if fn is None else register(fn)

    def run(self, fn: RunF) -> RunF:
        """Register the run handler (required): ``fn(request, caller)``.

        Return a dict (the details of a SUCCEEDED action), an
        :class:`ActionStatus`, or raise :class:`ActionFailed`.
        """
        return self._register("run", fn)

    def status(self, fn: StatusF) -> StatusF:
        """Register a status handler: ``fn(action, caller)``.

        It is called for actions not yet finished, with the stored action,
        and answers like run; returning ``None`` keeps the action as it is.
        Without one, status answers the stored action.
        """
        return self._register("status", fn)

    def cancel(self, fn: CancelF) -> CancelF:
        """Register a cancel handler: ``fn(action, caller)``.

        Without one, cancel makes an unfinished action FAILED with
        ``display_status`` "Canceled".
        """
        return self._register("cancel", fn)

    def release(self, fn: ReleaseF) -> ReleaseF:
        """Register a release hook: ``fn(action, caller)``, called before a
        finished action is deleted (to clean up what it left behind)."""
        return self._register("release", fn)

    def log(self, fn: LogF) -> LogF:
        """Register a log handler: ``fn(action, caller, query)`` returning a
        :class:`LogPage` or a list of :class:`LogEntry`. Enables the log route."""
        return self._register("log", fn)

    def enumerate(self, fn: EnumerateF) -> EnumerateF:
        """Register an enumerate handler: ``fn(query, caller)``.

        ``query`` is an :class:`EnumerateQuery`: ``query.actions`` holds the
        stored actions the caller may see that match the request's filters
        (``query.statuses``, ``query.roles``); return those to answer, as a
        list of :class:`Action` (refreshed if you like: a changed one is
        stored); only those still in a status asked for are answered, and
        anything else in the list is left out. Without one, ``GET /actions``
        answers from the store.

        The answer is a JSON array of action status documents (each as status
        answers it), oldest first, not paged: ``[{"action_id": ...,
        "status": "ACTIVE", "creator_id": ..., "details": {...}, ...}]``.
        """
        return self._register("enumerate", fn)

    def resume(self, fn: ResumeF) -> ResumeF:
        """Register a resume handler: ``fn(action, caller)``, answering like
        status, instead of the framework's (which retries what needed consent)."""
        return self._register("resume", fn)

    @property
    def description(self) -> dict[str, Any]:
        """The provider description served at the root of the prefix."""
        about = {k: v for k, v in self._about.items() if v is not None}
        about["log_supported"] = "log" in self._handlers or "job" in self._handlers
        return about

    @property
    def dependent_scopes(self) -> tuple[str, ...]:
        """The scopes the provider acts under for its callers (scope strings):
        ``dependent_scopes=`` and its job's ``scopes``, each once. A job
        with ``keep_tokens`` gets refresh tokens for them when a run is
        accepted; they belong among the dependent scopes of :attr:`scope`."""
        return self._jobs.scopes()

    @property
    def handlers(self) -> Mapping[str, Callable[..., Any]]:
        """The registered handlers by operation name."""
        return dict(self._handlers)
