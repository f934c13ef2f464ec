"""Logs a machine can read: one JSON object per line.

Opt in with ``APTOOLS_LOG_FORMAT=json`` (``aptools serve --log-format
json``), or put :class:`JSONFormatter` on your own handler. Every record
becomes one line::

    {"time": "2026-01-02T03:04:05.678Z", "level": "INFO",
     "logger": "aptools.access", "message": "POST /echo/run 202 ...",
     "method": "POST", "route": "/echo/run", "operation": "run",
     "status": 202, "duration": 0.0012, "caller": "urn:globus:auth:...",
     "action_id": "...", "request_id": "...", "trace_id": "..."}

Access records carry the request's fields (``record.aptools``, the fields
of :class:`~aptools.RequestInfo`); any other record logged while a request
or a job is handled carries its ``action_id`` and ``request_id``, where
known (:func:`log_context`); ``trace_id`` and ``span_id`` come from the
current OpenTelemetry span, when OpenTelemetry is installed. A traceback is
``error``. What a record never holds is what the text log never holds:
tokens, secrets, request bodies.

Nothing a client sends can forge a record: every value is a JSON string
written by orjson, which escapes line feeds, carriage returns, escape and
every other control character; the line and paragraph separators (U+2028,
U+2029) and NEL (U+0085), which orjson writes as they are but some readers
take for line ends, are escaped here too.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

import orjson

__all__ = [
    "FORMAT_VARIABLE",
    "JSONFormatter",
    "configure_logging",
    "log_context",
    "log_format",
]

#: The environment variable that chooses the log format: ``text`` (the
#: default) or ``json``.
FORMAT_VARIABLE: Final = "APTOOLS_LOG_FORMAT"
FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What is known of the request or job being handled in this context: an
# object with ``get(name)`` (a Falcon request's ``context``, or a dict).
_context: ContextVar[Any] = ContextVar("aptools_log_context", default=None)

_FIELDS: Final = ("action_id", "request_id")

# Line ends that JSON allows unescaped (UTF-8 encoded).
_SEPARATORS: Final = (
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
    (b"\xc2\x85", b"\\u0085"),
)


def log_format(value: str | None = None) -> str:
    """The log format asked for: ``value``, else ``APTOOLS_LOG_FORMAT``,
    else ``"text"``. Raises :class:`ValueError` for another word."""
    chosen = (value or os.environ.get(FORMAT_VARIABLE) or "text").strip().lower()
    if chosen not in FORMATS:
        raise ValueError(
            f"{FORMAT_VARIABLE} must be one of {', '.join(FORMATS)}, not {chosen!r}"
        )
    return chosen


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Records logged inside the block carry ``fields`` (``action_id``,
    ``request_id``) in the JSON format.

    >>> with log_context(action_id=job.action_id):
    ...     run_the_job()
    """
    token = _context.set(fields)
    try:
        yield
    finally:
        _context.reset(token)


def bind(context: Any) -> Any:
    """Make ``context`` (anything with ``get(name)``) the current one;
    returns the token for :func:`unbind`. PERF: one ContextVar.set."""
    return _context.set(context)


def unbind(token: Any) -> None:
    """Restore the context :func:`bind` replaced."""
    try:
        _context.reset(token)
    except (ValueError, RuntimeError):
        _context.set(None)  # bound in another context (or reset already)


def _trace_ids() -> Callable[[], tuple[str, str] | None]:
    """How to read the current span's ids: from OpenTelemetry if it is
    installed, else never."""
    try:
        from opentelemetry import trace
    except ImportError:
        return lambda: None

    def ids() -> tuple[str, str] | None:
        span = trace.get_current_span().get_span_context()
        if not span.is_valid:
            return None
        return format(span.trace_id, "032x"), format(span.span_id, "016x")

    return ids


class JSONFormatter(logging.Formatter):
    """Formats each record as one JSON object on one line (see the module).

    >>> handler = logging.StreamHandler()
    >>> handler.setFormatter(JSONFormatter())
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # dictConfig may pass fmt / datefmt: a JSON line has no use for them.
        super().__init__()
        self._ids = _trace_ids()

    def format(self, record: logging.LogRecord) -> str:
        seconds = record.created
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            + f".{int(seconds % 1 * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields: Mapping[str, Any] | None = getattr(record, "aptools", None)
        if isinstance(fields, Mapping):
            doc.update(fields)
        else:
            context = _context.get()
            if context is not None:
                for name in _FIELDS:
                    value = context.get(name)
                    if value is not None:
                        doc[name] = value
        ids = self._ids()
        if ids is not None:
            doc["trace_id"], doc["span_id"] = ids
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["error"] = record.exc_text
        line = orjson.dumps(doc, default=str)
        for raw, escaped in _SEPARATORS:
            if raw in line:
                line = line.replace(raw, escaped)
        return line.decode()


def configure_logging(level: int = logging.WARNING, format: str | None = None) -> str:
    """Send records of ``level`` and above to stderr in the chosen format
    (:func:`log_format`), unless the root logger has handlers already; then
    their formatters are left alone, except that ``json`` puts
    :class:`JSONFormatter` on them. Returns the format."""
    chosen = log_format(format)
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler()
        root.addHandler(stderr)
        root.setLevel(level)
        if chosen == "text":
            stderr.setFormatter(logging.Formatter(TEXT_FORMAT))
    if chosen == "json":
        for handler in root.handlers:
            handler.setFormatter(JSONFormatter())
    return chosen


def json_configured() -> bool:
    """Whether any handler of the root or ``aptools`` loggers writes JSON."""
    return any(
        isinstance(handler.formatter, JSONFormatter)
        for name in ("", "aptools", "aptools.access")
        for handler in logging.getLogger(name).handlers
    )
