"""The OpenTelemetry side of :mod:`aptools.telemetry` (imported only when
``opentelemetry-api`` is installed and a provider records)."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any, Final, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aptools.errors import AuthServiceError, StoreUnavailable
from aptools.protocol.effects import Op, StoreCall

__all__ = ["Instruments", "configured", "current_traceparent"]

T = TypeVar("T")

_SCOPE: Final = "aptools"
_W3C: Final = TraceContextTextMapPropagator()
# Latency buckets in seconds (OpenTelemetry's advice for HTTP servers).
_SECONDS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0
)  # fmt: skip


def _version() -> str:
    try:
        return metadata.version("aptools")
    except metadata.PackageNotFoundError:
        return "0"


def configured() -> bool:
    """Whether the application set a tracer or meter provider (the API's
    defaults are proxies that record nothing until one is set)."""
    from opentelemetry.metrics import _internal as metrics_internal

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider) or (
        metrics.get_meter_provider() is not metrics_internal._PROXY_METER_PROVIDER
    )


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")


class _Headers(Getter[Any]):
    """Reads propagation headers from a Falcon request (either face)."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = carrier.get_header(key)
        return None if value is None else [value]

    def keys(self, carrier: Any) -> list[str]:
        return []


_HEADERS: Final = _Headers()


class Instruments:
    """Spans and metrics of one built provider (see :mod:`aptools.telemetry`)."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        version = _version()
        self.tracer = trace.get_tracer(_SCOPE, version, tracer_provider)
        meter = self.meter = metrics.get_meter(_SCOPE, version, meter_provider)
        self.request_duration = meter.create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Time to answer a request, by route, operation and status.",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.auth_duration = meter.create_histogram(
            "aptools.globus_auth.duration",
            unit="s",
            description="Time of a call to Globus Auth or Groups, by call.",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.auth_errors = meter.create_counter(
            "aptools.globus_auth.errors",
            unit="{call}",
            description="Calls to Globus Auth or Groups that failed, by call and code.",
        )
        self.store_unavailable = meter.create_counter(
            "aptools.store.unavailable",
            unit="{call}",
            description="Store calls that found the store unreachable or too slow.",
        )

    # -- requests --------------------------------------------------------------

    def middleware(self, operations: dict[tuple[str, str], str]) -> _Traced:
        return _Traced(self, operations)

    # -- store calls -----------------------------------------------------------

    def store_call(self, inner: StoreCall) -> StoreCall:
        return _TracedStoreCall(inner, self)

    def traced_store(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` (a store method) called inside a span."""
        name = getattr(fn, "__name__", "call")
        attributes = {"db.operation.name": name}
        span_name = f"aptools.store {name}"
        tracer, unavailable = self.tracer, self.store_unavailable

        if asyncio.iscoroutinefunction(fn):

            async def traced_async(*args: Any) -> Any:
                with tracer.start_as_current_span(
                    span_name, kind=SpanKind.CLIENT, attributes=attributes
                ):
                    try:
                        return await fn(*args)
                    except StoreUnavailable:
                        unavailable.add(1, attributes)
                        raise

            return traced_async

        @functools.wraps(fn)
        def traced(*args: Any) -> Any:
            with tracer.start_as_current_span(
                span_name, kind=SpanKind.CLIENT, attributes=attributes
            ):
                try:
                    return fn(*args)
                except StoreUnavailable:
                    unavailable.add(1, attributes)
                    raise

        return traced

    # -- Globus Auth -----------------------------------------------------------

    @contextmanager
    def auth_call(self, name: str) -> Iterator[None]:
        attributes = {"aptools.globus_auth.call": name}
        started = time.perf_counter()
        with self.tracer.start_as_current_span(
            f"globus_auth {name}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except AuthServiceError as exc:
                span.set_status(Status(StatusCode.ERROR, exc.error_code))
                span.set_attribute("error.type", exc.error_code)
                self.auth_errors.add(1, {**attributes, "error.type": exc.error_code})
                raise
            finally:
                self.auth_duration.record(time.perf_counter() - started, attributes)

    # -- jobs ------------------------------------------------------------------

    def job_metrics(self, queue: Any) -> Any:
        from aptools.telemetry._jobs import JobInstruments

        return JobInstruments(self.meter, queue)

    @contextmanager
    def job_span(
        self, carrier: str | None, action_id: str, name: str = "job"
    ) -> Iterator[None]:
        parent = None
        if carrier:
            parent = _W3C.extract({"traceparent": carrier})
        with self.tracer.start_as_current_span(
            f"aptools {name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={"aptools.action_id": action_id},
        ):
            yield


class _TracedStoreCall(StoreCall):
    __slots__ = ("_inner", "_instruments")
    # Fast paths read the store directly, outside any span: not routed.
    in_place = False

    def __init__(self, inner: StoreCall, instruments: Instruments) -> None:
        self._inner = inner
        self._instruments = instruments

    def __call__(self, fn: Callable[..., T], *args: Any) -> Op[T]:
        result: T = yield from self._inner(self._instruments.traced_store(fn), *args)
        return result

    def now(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._inner.now(self._instruments.traced_store(fn), *args)


class _Traced:
    """Falcon middleware for both faces: a server span per request, the
    request's duration recorded when it is answered."""

    def __init__(
        self, instruments: Instruments, operations: dict[tuple[str, str], str]
    ) -> None:
        self._tracer = instruments.tracer
        self._duration = instruments.request_duration
        self._operations = operations

    def process_request(self, req: Any, resp: Any) -> None:
        parent = propagate.extract(req, getter=_HEADERS)
        span = self._tracer.start_span(
            req.method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": req.method},
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        req.context.otel = (span, token, time.perf_counter())

    async def process_request_async(self, req: Any, resp: Any) -> None:
        self.process_request(req, resp)

    def process_response(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        context = req.context
        held = context.get("otel")
        if held is None:
            return
        span, token, started = held
        duration = time.perf_counter() - started
        route = req.uri_template
        status = resp.status_code
        attributes: dict[str, Any] = {
            "http.request.method": req.method,
            "http.response.status_code": status,
        }
        if route:
            attributes["http.route"] = route
            operation = self._operations.get((route, req.method))
            if operation is not None:
                attributes["aptools.operation"] = operation
        self._duration.record(duration, attributes)
        span.update_name(f"{req.method} {route}" if route else req.method)
        span.set_attributes(attributes)
        caller = context.get("caller")
        if caller is not None:
            span.set_attribute("enduser.id", caller.identity_id)
        for field in ("action_id", "request_id"):
            value = context.get(field)
            if value is not None:
                span.set_attribute(f"aptools.{field}", value)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        otel_context.detach(token)

    async def process_response_async(
        self, req: Any, resp: Any, resource: Any, req_succeeded: bool
    ) -> None:
        self.process_response(req, resp, resource, req_succeeded)
