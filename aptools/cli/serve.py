"""``aptools serve``: check the configuration, then become gunicorn or uvicorn."""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import socket
import sys
from importlib import metadata
from typing import Any

from aptools.cli.common import (
    CommandError,
    add_log_format,
    apply_log_format,
    compiled_provider,
    load_provider,
    log_requests,
    port,
    store_url,
    verify_client,
)
from aptools.logjson import JSONFormatter
from aptools.protocol.spec import Spec
from aptools.provider import Provider

__all__ = ["add_parser", "asgi_app", "serve", "tcp_listener", "wsgi_app"]

#: uvicorn's own loggers in the JSON format (a logging.config dictionary).
UVICORN_JSON_LOGGING = os.path.join(os.path.dirname(__file__), "uvicorn-json.json")

HELP = "serve with gunicorn (default) or uvicorn, real Globus Auth"

#: Threads per gunicorn worker. A sync worker serves one connection at a time
#: and blocks on it until it sends a whole request or the worker times out
#: (30 s), so N idle connections stalled N sync workers. Our gthread worker
#: (:mod:`aptools.cli.gworker`) gives a connection a thread only while it
#: reads or answers: one that sends nothing waits in the worker's poller and
#: holds no thread at all. A client that sends half a request holds its
#: thread until it sends the rest or leaves; beyond workers x threads such
#: clients, put a buffering proxy in front (nginx, a load balancer) or serve
#: with uvicorn (--asgi).
DEFAULT_THREADS = 8


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "serve",
        help=HELP,
        description=(
            "Check the provider, its store and its Globus Auth client, then serve "
            "it. Without --wsgi or --asgi, gunicorn serves the WSGI app with "
            "threaded workers (the default)."
        ),
    )
    parser.add_argument("target", help="MODULE or MODULE:ATTR naming the Provider")
    face = parser.add_mutually_exclusive_group()
    face.add_argument(
        "--wsgi",
        dest="server",
        action="store_const",
        const="gunicorn",
        help="gunicorn with threaded (gthread) workers: the default",
    )
    face.add_argument(
        "--asgi",
        dest="server",
        action="store_const",
        const="uvicorn",
        help="uvicorn serving the ASGI app",
    )
    parser.set_defaults(server="gunicorn")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port, default=8000)
    parser.add_argument(
        "--workers", type=_positive, default=1, help="worker processes (default 1)"
    )
    parser.add_argument(
        "--threads",
        type=_positive,
        default=DEFAULT_THREADS,
        help=f"gunicorn: threads per worker (default {DEFAULT_THREADS})",
    )
    add_log_format(parser)
    parser.add_argument(
        "--no-auth-check",
        dest="auth_check",
        action="store_false",
        help="start without asking Globus Auth whether the client id and secret work",
    )
    parser.set_defaults(func=serve)


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a whole number, 1 or more") from None
    if number < 1:
        raise argparse.ArgumentTypeError("a whole number, 1 or more")
    return number


def _checked(args: argparse.Namespace) -> Provider:
    """The provider, once its store opens and Globus Auth knows its client."""
    from aptools.store import MemoryStore

    def opens(spec: Spec) -> None:
        spec.store.get("aptools-serve-check", 0.0)
        if spec.jobs is not None:
            spec.jobs.keys  # noqa: B018 - a job that keeps tokens needs its key

    provider, spec = compiled_provider(args.target, verify=opens)
    store = spec.store
    if isinstance(store, MemoryStore) and args.workers > 1:
        raise CommandError(
            f"the memory: store keeps actions in each process's memory: with "
            f"--workers {args.workers} each worker would hold different actions. "
            "Serve with --workers 1 or set APTOOLS_STORE to a shared store such as "
            "sqlite:///path/to/actions.db"
        )
    if args.auth_check:
        verify_client(provider)
    return provider


def _server_installed(server: str) -> None:
    """Raise :class:`CommandError` (one line, exit 1) when ``server`` (the
    module gunicorn or uvicorn) cannot be imported: before any banner."""
    try:
        importlib.import_module(server)
    except ImportError:
        raise CommandError(
            f"{server} is not installed: pip install 'aptools[serve]'"
        ) from None


def serve(args: argparse.Namespace) -> int:
    """Check the configuration, then serve with gunicorn or uvicorn."""
    _server_installed(args.server)
    json_logs = apply_log_format(args) == "json"
    provider = _checked(args)
    env = {**os.environ, "APTOOLS_TARGET": args.target}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.getcwd(), env.get("PYTHONPATH")])
    )
    if args.server == "uvicorn":
        command = _uvicorn(args)
        if json_logs:
            command += ["--log-config", UVICORN_JSON_LOGGING]
        how = "uvicorn"
    else:
        command = _gunicorn(args)
        if json_logs:
            command[-1:-1] = ["--logger-class", "aptools.cli.gworker.JSONLogger"]
        how = f"gunicorn, {args.threads} threads per worker"
    workers = f"{args.workers} worker{'s' if args.workers > 1 else ''}"
    banner = (
        f"aptools serve: {provider.title} on http://{args.host}:{args.port}"
        f"{provider.prefix} ({how}, {workers}; store {store_url(provider)})"
    )
    if json_logs:
        record = logging.LogRecord(
            "aptools.serve", logging.INFO, "", 0, banner, (), None
        )
        banner = JSONFormatter().format(record)
    print(banner, flush=True)
    os.execve(sys.executable, command, env)  # noqa: S606 - becomes the server
    return 0  # not reached


def _gunicorn(args: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--worker-class",
        "aptools.cli.gworker.ThreadWorker",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--bind",
        f"{args.host}:{args.port}",
        *_control_socket(args.port),
        "aptools.cli:wsgi_app()",
    ]


_inherited: list[socket.socket] = []


def _uvicorn(args: argparse.Namespace) -> list[str]:
    if args.workers > 1:
        # The server inherits the listening socket (see tcp_listener).
        try:
            bound = tcp_listener(args.host, args.port)
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
            ) from None
        _inherited.append(bound)  # open until execve hands it to the server
        where = ["--fd", str(bound.fileno())]
    else:
        where = ["--host", args.host, "--port", str(args.port)]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "aptools.cli:asgi_app",
        *where,
        "--workers",
        str(args.workers),
        "--no-access-log",
        "--http",  # its own 400 in JSON, see aptools.cli.uvproto
        "aptools.cli.uvproto:JSONErrorsProtocol",
    ]


def _served() -> Provider:
    log_requests()
    return load_provider(os.environ["APTOOLS_TARGET"])


def wsgi_app() -> Any:
    """The WSGI app ``aptools serve`` hands to gunicorn (a factory). gunicorn
    calls it in each worker process after the fork, so the worker's job
    runner and housekeeping start here, at its boot, rather than at its first
    request as the app alone would start them."""
    provider = _served()
    app = provider.wsgi()
    provider.compile().execution.serving()
    # PERF: objects made while loading never need collecting; freezing them
    # keeps the collector's full passes short in this process we own.
    gc.freeze()
    return app


def asgi_app() -> Any:
    """The ASGI app ``aptools serve`` hands to uvicorn (a factory)."""
    app = _served().asgi()
    gc.freeze()  # PERF: as in wsgi_app
    return app


def tcp_listener(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn's workers to inherit (``--fd``).

    uvicorn binds the socket of its ``--workers`` mode in a way that keeps
    asyncio from disabling Nagle's algorithm on the connections, so each
    response on a kept-alive connection waits for the client's delayed
    acknowledgement (about 40 ms on Linux). ``TCP_NODELAY`` set here on the
    listening socket is inherited by every connection it accepts.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bound = socket.socket(family, socket.SOCK_STREAM)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    bound.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bound.bind((host, port))
    bound.set_inheritable(True)
    return bound


def _control_socket(port: int) -> list[str]:
    """A control socket of this server's own (gunicorn 27 and later).

    gunicorn's default path is one per user, so a second server on the host
    would take over the first one's socket.
    """
    try:
        major = int(metadata.version("gunicorn").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return []
    if major < 27:
        return []
    path = os.path.join(os.path.expanduser("~"), ".gunicorn", f"aptools-{port}.ctl")
    return ["--control-socket", path]
