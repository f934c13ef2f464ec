"""The ``aptools`` command: ``dev`` (try a provider locally) and ``check``."""

from __future__ import annotations

import argparse
import gc
import importlib
import ipaddress
import json
import logging
import os
import shlex
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Sequence
from importlib import metadata
from socketserver import ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from aptools.provider import Provider, ProviderConfigError

__all__ = ["asgi_app", "load_provider", "main", "wsgi_app"]

# Fixed, so that tokens printed once keep working after a restart of `dev`.
DEV_RUNNER: Final = ("3b0e6a5e-5c6e-4f3b-9d4a-6d2f2f9c1a01", "dev-token-alice")
DEV_OUTSIDER: Final = ("7c1d2b4e-0a9f-4e8d-8b6c-5e4f3a2b1c02", "dev-token-bob")
DEV_STORE: Final = "sqlite:///.aptools/dev-actions.db"


def load_provider(target: str) -> Provider:
    """The :class:`Provider` named by ``module`` or ``module:attr``."""
    module_name, _, attr = target.partition(":")
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Provider):
            raise SystemExit(f"aptools: {target} is not a Provider")
        return found
    providers = [v for v in vars(module).values() if isinstance(v, Provider)]
    if len(providers) != 1:
        raise SystemExit(
            f"aptools: {module_name} defines {len(providers)} providers; "
            "name one as MODULE:ATTR"
        )
    return providers[0]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _DevRequestHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return  # the aptools.access log says it better


def dev(args: argparse.Namespace) -> int:
    """Serve a provider locally with a fake Globus Auth and print how to call it."""
    from aptools.schema import example_for
    from aptools.testing import FakeGlobusAuth

    if not _loopback(args.host):
        print(
            f"aptools dev: refusing to listen on {args.host}: dev mode accepts "
            "made-up tokens and is for development on this machine only. "
            "Use 127.0.0.1, or `aptools serve` with real Globus Auth.",
            file=sys.stderr,
        )
        return 2
    _log_requests()
    fake = FakeGlobusAuth().start()
    os.environ.update(fake.env())
    os.environ.setdefault("APTOOLS_STORE", DEV_STORE)
    provider = load_provider(args.target)
    fake.scope = provider.scope
    runnable = provider.description["runnable_by"]
    runner_id = next(
        (
            p.rsplit(":", 1)[1]
            for p in runnable
            if p.startswith("urn:globus:auth:identity:")
        ),
        DEV_RUNNER[0],
    )
    alice = fake.identity("alice@example.org", id=runner_id, token=DEV_RUNNER[1])
    for group in (p for p in runnable if p.startswith("urn:globus:groups:id:")):
        fake.group(alice, id=group.rsplit(":", 1)[1])
    if "all_authenticated_users" in runnable:
        bob = fake.identity(
            "bob@example.org",
            id=DEV_OUTSIDER[0],
            token=DEV_OUTSIDER[1],
            scopes=("urn:globus:auth:scope:transfer.api.globus.org:all",),
        )
        bob_note = "its token is not for this provider's scope: answered 401"
    else:
        bob = fake.identity(
            "bob@example.org", id=DEV_OUTSIDER[0], token=DEV_OUTSIDER[1]
        )
        bob_note = "not in runnable_by: run is answered 403"
    app: Any = provider.asgi() if args.asgi else provider.wsgi()
    base = f"http://{args.host}:{args.port}{provider.prefix.rstrip('/')}"
    body = json.dumps(
        {"request_id": "demo-1", "body": example_for(provider.input_schema)}
    )
    auth_a = f"Authorization: Bearer {alice.token}"
    grab = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"action_id\"])'"
    lines = [
        f"aptools dev: {provider.title} at {base}/",
        "  development only: tokens are checked by a fake Globus Auth",
        f"  store: {os.environ['APTOOLS_STORE']}",
        "",
        "Identities:",
        f"  alice  {alice.urn}  token {alice.token}  (may run the provider)",
        f"  bob    {bob.urn}  token {bob.token}  ({bob_note})",
        "",
        "Try it:",
        "# introspect",
        f"curl -s -w '\\n' {base}/",
        "# run an action as alice; its id is kept in $ACTION_ID",
        f"ACTION_ID=$(curl -s -X POST {base}/run -H {shlex.quote(auth_a)} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)} | tee /dev/stderr "
        f"| {grab}); echo",
        "# its status",
        f"curl -s -w '\\n' {base}/actions/$ACTION_ID -H {shlex.quote(auth_a)}",
        "# release it (once it has finished)",
        f"curl -s -w '\\n' -X POST {base}/$ACTION_ID/release -H {shlex.quote(auth_a)}",
        "# bob may not run it",
        f"curl -s -w '\\n' -X POST {base}/run "
        f"-H {shlex.quote('Authorization: Bearer ' + bob.token)} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}",
        "",
        "Ctrl-C stops.",
    ]
    try:
        if args.asgi:
            try:
                import uvicorn
            except ImportError:
                print("aptools dev --asgi needs uvicorn: pip install 'aptools[serve]'")
                return 2
            sock = socket.create_server((args.host, args.port))
            server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
            print("\n".join(lines), flush=True)
            server.run(sockets=[sock])
        else:
            httpd = make_server(
                args.host,
                args.port,
                app,
                server_class=_ThreadingWSGIServer,
                handler_class=_DevRequestHandler,
            )
            print("\n".join(lines), flush=True)
            httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


def _offline(target: str) -> Provider:
    """Load and compile a provider without needing credentials or a store."""
    os.environ.setdefault("APTOOLS_CLIENT_ID", "offline")
    os.environ.setdefault("APTOOLS_CLIENT_SECRET", "offline")
    os.environ.setdefault("APTOOLS_STORE", "memory:")
    provider = load_provider(target)
    provider.compile()
    return provider


def check(args: argparse.Namespace) -> int:
    """Build a provider and print its description, routes and input schema."""
    from aptools.protocol.routes import full_path, route_table

    provider = _offline(args.target)
    about = provider.description
    schema = about.pop("input_schema")
    print(json.dumps(about, indent=2))
    print("\nroutes (each GET also answers HEAD):")
    methods: dict[str, list[str]] = {}
    for route in route_table(provider.handlers):
        if route.method == "HEAD":
            continue
        methods.setdefault(full_path(provider.prefix, route.path), []).append(
            route.method
        )
    for path, names in methods.items():
        print(f"  {' '.join(sorted(names)):<14} {path}")
    print("\ninput schema:")
    print(json.dumps(schema, indent=2))
    return 0


def openapi(args: argparse.Namespace) -> int:
    """Print the provider's OpenAPI document."""
    print(json.dumps(_offline(args.target).openapi(), indent=2))
    return 0


def _log_requests() -> None:
    """Send warnings and the access log to stderr, unless logging is set up."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.WARNING,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    logging.getLogger("aptools.access").setLevel(logging.INFO)


def _served() -> Provider:
    _log_requests()
    return load_provider(os.environ["APTOOLS_TARGET"])


def wsgi_app() -> Any:
    """The WSGI app ``aptools serve`` hands to gunicorn (a factory)."""
    app = _served().wsgi()
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


def serve(args: argparse.Namespace) -> int:
    """Check the configuration, then serve with gunicorn or uvicorn."""
    try:
        provider = load_provider(args.target)
        store = provider.compile().store
        store.get("aptools-serve-check", 0.0)
    except (ProviderConfigError, ValueError, OSError, sqlite3.Error) as exc:
        print(f"aptools serve: {exc}", file=sys.stderr)
        return 1
    env = {**os.environ, "APTOOLS_TARGET": args.target}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.getcwd(), env.get("PYTHONPATH")])
    )
    if args.asgi:
        if args.workers > 1:
            # The server inherits the listening socket (see tcp_listener).
            try:
                bound = tcp_listener(args.host, args.port)
            except OSError as exc:
                print(
                    f"aptools serve: cannot listen on {args.host}:{args.port}: {exc}",
                    file=sys.stderr,
                )
                return 1
            where = ["--fd", str(bound.fileno())]
        else:
            where = ["--host", args.host, "--port", str(args.port)]
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "aptools.cli:asgi_app",
            *where,
            "--workers",
            str(args.workers),
            "--no-access-log",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(args.workers),
            "--bind",
            f"{args.host}:{args.port}",
            *_control_socket(args.port),
            "aptools.cli:wsgi_app()",
        ]
    print(
        f"aptools serve: {provider.title} on http://{args.host}:{args.port}"
        f"{provider.prefix} ({'uvicorn' if args.asgi else 'gunicorn'}, "
        f"{args.workers} worker{'s' if args.workers > 1 else ''})",
        flush=True,
    )
    os.execve(sys.executable, command, env)  # noqa: S606 - becomes the server
    return 0  # not reached


def call(args: argparse.Namespace) -> int:
    """A small client: run, status, cancel, release or log an action."""
    import requests

    from aptools.protocol.routes import find

    base = args.url.rstrip("/")
    headers = {"Authorization": f"Bearer {args.token}"}

    def answer(response: requests.Response) -> Any:
        try:
            doc = response.json()
        except ValueError:
            doc = {"code": "NotJSON", "description": response.text[:200]}
        if response.status_code >= 400:
            print(json.dumps(doc, indent=2), file=sys.stderr)
            raise SystemExit(1)
        return doc

    if args.operation == "run":
        body = _read_body(args.body)
        document = {"request_id": args.request_id or str(uuid.uuid4()), "body": body}
        doc = answer(
            requests.post(f"{base}/run", json=document, headers=headers, timeout=60)
        )
        pause = 0.5
        while args.wait and doc["status"] not in ("SUCCEEDED", "FAILED"):
            shown = doc.get("display_status") or ""
            print(f"  {doc['status']} {shown}".rstrip(), file=sys.stderr, flush=True)
            time.sleep(pause)
            pause = min(pause * 1.5, 10.0)
            doc = answer(
                requests.get(
                    f"{base}/{doc['action_id']}/status", headers=headers, timeout=60
                )
            )
    else:
        if not args.action_id:
            print(f"aptools call: {args.operation} needs an ACTION_ID", file=sys.stderr)
            return 2
        route = find(args.operation, "1.0")
        url = base + route.path.replace("{action_id}", args.action_id)
        doc = answer(requests.request(route.method, url, headers=headers, timeout=60))
    print(json.dumps(doc, indent=2))
    return 0


def _read_body(text: str | None) -> Any:
    if text is None:
        return {}
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as handle:
            text = handle.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"aptools call: --body is not JSON: {exc}") from None


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError("a port is 1..65535")
    return port


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aptools`` console script."""
    parser = argparse.ArgumentParser(prog="aptools", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_dev = commands.add_parser(
        "dev", help="serve a provider locally with a fake Globus Auth"
    )
    run_dev.add_argument("target", help="MODULE or MODULE:ATTR naming the Provider")
    run_dev.add_argument("--host", default="127.0.0.1")
    run_dev.add_argument("--port", type=_port, default=8000)
    run_dev.add_argument(
        "--asgi", action="store_true", help="serve the ASGI app with uvicorn"
    )
    run_dev.set_defaults(func=dev)
    run_check = commands.add_parser(
        "check", help="build a provider; print its description, routes and schema"
    )
    run_check.add_argument("target", help="MODULE or MODULE:ATTR")
    run_check.set_defaults(func=check)
    run_openapi = commands.add_parser("openapi", help="print the OpenAPI document")
    run_openapi.add_argument("target", help="MODULE or MODULE:ATTR")
    run_openapi.set_defaults(func=openapi)
    run_serve = commands.add_parser(
        "serve", help="serve with gunicorn or uvicorn against the real Globus Auth"
    )
    run_serve.add_argument("target", help="MODULE or MODULE:ATTR")
    face = run_serve.add_mutually_exclusive_group()
    face.add_argument(
        "--wsgi", dest="asgi", action="store_false", help="gunicorn (default)"
    )
    face.add_argument("--asgi", dest="asgi", action="store_true", help="uvicorn")
    run_serve.add_argument("--host", default="127.0.0.1")
    run_serve.add_argument("--port", type=_port, default=8000)
    run_serve.add_argument("--workers", type=int, default=1)
    run_serve.set_defaults(func=serve)
    run_call = commands.add_parser("call", help="call a provider: run, status, ...")
    run_call.add_argument(
        "url", help="the provider's base URL, e.g. http://host/skeleton"
    )
    run_call.add_argument(
        "operation", choices=["run", "status", "cancel", "release", "log"]
    )
    run_call.add_argument("action_id", nargs="?", help="for all but run")
    run_call.add_argument("--token", required=True, help="a Globus Auth access token")
    run_call.add_argument("--body", help="run's body: JSON, or @file")
    run_call.add_argument("--request-id", help="run's request_id (default: random)")
    run_call.add_argument(
        "--wait", action="store_true", help="run: poll until the action has finished"
    )
    run_call.set_defaults(func=call)
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except (ProviderConfigError, ImportError) as exc:
        print(f"aptools {args.command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if isinstance(exc, socket.error) and exc.errno == 98:
            print(
                f"aptools: port {args.port} is in use; pick another with --port",
                file=sys.stderr,
            )
            return 2
        raise
    return result


if __name__ == "__main__":
    raise SystemExit(main())
