"""``aptools dev``: serve a provider locally with a fake Globus Auth."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
from collections.abc import Sequence
from typing import Any, Final
from wsgiref.simple_server import make_server

from aptools.cli.common import (
    CommandError,
    add_log_format,
    apply_log_format,
    compiled_provider,
    log_requests,
    loopback,
    port,
)
from aptools.cli.devserver import DevRequestHandler, DevServer
from aptools.cli.fakeauth import describe, identities, withheld
from aptools.provider import Provider
from aptools.schema import example_for
from aptools.store import redact

__all__ = ["add_parser", "dev"]

HELP = "try a provider locally with a fake Globus Auth"

DEV_STORE: Final = "sqlite:///.aptools/dev-actions.db"
#: Where ``aptools dev`` keeps the encryption key it makes when
#: ``APTOOLS_ENCRYPTION_KEY`` is unset.
DEV_KEY: Final = ".aptools/encryption-key"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "dev",
        help=HELP,
        description=(
            "Serve the provider on this machine with a fake Globus Auth and three "
            "identities (alice may run, bob may not, carol is shared with), and "
            "print curl commands that work as printed (API 1.1 routes)."
        ),
    )
    parser.add_argument("target", help="MODULE or MODULE:ATTR naming the Provider")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port, default=8000)
    parser.add_argument(
        "--asgi", action="store_true", help="serve the ASGI app with uvicorn"
    )
    add_log_format(parser)
    parser.add_argument(
        "--withhold-consent",
        action="append",
        default=[],
        metavar="SCOPE",
        help="alice has not consented to SCOPE (repeatable); the steps to "
        "consent and resume are printed",
    )
    parser.set_defaults(func=dev)


def _curls(base: str, body: dict[str, Any], who: Any) -> list[str]:
    """Commented curl commands, each on the line after its comment."""

    def bearer(token: str) -> str:
        return "-H " + shlex.quote(f"Authorization: Bearer {token}")

    alice, bob, carol = (
        bearer(p.token) for p in (who.runner, who.outsider, who.shared)
    )
    json_type = "-H 'Content-Type: application/json'"
    grab = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"action_id\"])'"
    shared = {**body, "monitor_by": [who.shared.urn]}
    managed = {**body, "request_id": "demo-2", "manage_by": [who.shared.urn]}

    def run(variable: str, document: dict[str, Any]) -> str:
        return (
            f"{variable}=$(curl -s -X POST {base}/actions {alice} {json_type} "
            f"-d {shlex.quote(json.dumps(document))} | tee /dev/stderr | {grab}); echo"
        )

    return [
        "# introspect",
        f"curl -s -w '\\n' {base}/",
        "# run an action as alice, shared with carol (monitor_by): id in $ACTION_ID",
        run("ACTION_ID", shared),
        "# its status, as alice",
        f"curl -s -w '\\n' {base}/actions/$ACTION_ID {alice}",
        "# carol may see it: monitor_by names her",
        f"curl -s -w '\\n' {base}/actions/$ACTION_ID {carol}",
        "# bob may not: "
        + (
            "to him it does not exist (404)"
            if who.outsider_has_scope
            else "his token is not for this provider (401)"
        ),
        f"curl -s -w '\\n' {base}/actions/$ACTION_ID {bob}",
        "# run another that carol may manage (manage_by); its id in $MANAGED_ID",
        run("MANAGED_ID", managed),
        "# carol cancels it (a finished action is answered unchanged)",
        f"curl -s -w '\\n' -X POST {base}/actions/$MANAGED_ID/cancel {carol}",
        "# wait until both have ended (an ACTIVE action is not released: 409)",
        "for id in $MANAGED_ID $ACTION_ID; do for i in $(seq 300); do "
        f"out=$(curl -s {base}/actions/$id {alice}); "
        'case "$out" in *\'"status":"ACTIVE"\'*) sleep 1;; *) break;; esac; '
        'done; echo "$out"; done',
        "# carol releases it",
        f"curl -s -w '\\n' -X DELETE {base}/actions/$MANAGED_ID {carol}",
        "# alice releases hers",
        f"curl -s -w '\\n' -X DELETE {base}/actions/$ACTION_ID {alice}",
        "# bob may not run it (" + ("403)" if who.outsider_has_scope else "401)"),
        f"curl -s -w '\\n' -X POST {base}/actions {bob} {json_type} "
        f"-d {shlex.quote(json.dumps({**body, 'request_id': 'demo-3'}))}",
    ]


def _consent_run(
    base: str, provider: Provider, who: Any, scopes: Sequence[str]
) -> list[str]:
    """The commands of step 1 of the consent loop: alice runs an action whose
    job acts under the first withheld scope (its id in ``$CONSENT_ID``, kept
    for the resume), then polls it until it is no longer ACTIVE. A job
    acts under a scope it declares, or one its input names: a string input
    called ``scope`` (as in ``examples.longjob``) is set to it."""
    if not scopes:
        return []
    schema = provider.input_schema
    body = example_for(schema)
    field = (schema.get("properties") or {}).get("scope")
    if (
        isinstance(body, dict)
        and isinstance(field, dict)
        and field.get("type") == "string"
    ):
        body["scope"] = scopes[0]
    alice = "-H " + shlex.quote(f"Authorization: Bearer {who.runner.token}")
    document = {"request_id": "demo-consent", "body": body}
    grab = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"action_id\"])'"
    return [
        f"CONSENT_ID=$(curl -s -X POST {base}/actions {alice} "
        "-H 'Content-Type: application/json' "
        f"-d {shlex.quote(json.dumps(document))} | tee /dev/stderr | {grab}); echo",
        "for i in $(seq 300); do "
        f"out=$(curl -s {base}/actions/$CONSENT_ID {alice}); "
        'case "$out" in *\'"status":"ACTIVE"\'*) sleep 1;; *) break;; esac; '
        'done; echo "$out"',
    ]


def _consent_resume(base: str, who: Any) -> str:
    """Step 3 of the consent loop: alice resumes ``$CONSENT_ID``; then it is
    polled until it ends, and released."""
    alice = "-H " + shlex.quote(f"Authorization: Bearer {who.runner.token}")
    return "\n".join(
        [
            f"curl -s -w '\\n' -X POST {base}/actions/$CONSENT_ID/resume {alice}",
            "# 4. it ends (SUCCEEDED), then she releases it",
            "for i in $(seq 300); do "
            f"out=$(curl -s {base}/actions/$CONSENT_ID {alice}); "
            'case "$out" in *\'"status":"ACTIVE"\'*) sleep 1;; *) break;; esac; '
            'done; echo "$out"',
            f"curl -s -w '\\n' -X DELETE {base}/actions/$CONSENT_ID {alice}",
        ]
    )


def dev(args: argparse.Namespace) -> int:
    """Serve a provider locally with a fake Globus Auth and print how to call it."""
    from aptools.testing import FakeGlobusAuth

    if not loopback(args.host):
        raise CommandError(
            f"refusing to listen on {args.host}: dev mode accepts made-up tokens "
            "and is for development on this machine only. Use 127.0.0.1, or "
            "`aptools serve` with real Globus Auth.",
            status=2,
        )
    apply_log_format(args)
    log_requests()
    fake = FakeGlobusAuth().start()
    try:
        os.environ.update(fake.env())
        if "APTOOLS_STORE" not in os.environ:
            # The dev store's directory is ours to make (a configured one is not).
            os.makedirs(".aptools", exist_ok=True)
            os.environ["APTOOLS_STORE"] = DEV_STORE
        key_line = []
        if not os.environ.get("APTOOLS_ENCRYPTION_KEY"):
            # The key jobs keep their callers' refresh tokens with: one of
            # its own, kept across restarts (so are the jobs).
            from aptools.jobs.tokens import dev_key

            os.environ["APTOOLS_ENCRYPTION_KEY"] = dev_key(DEV_KEY)
            key_line = [f"  encryption key: {DEV_KEY} (for jobs' tokens)"]
        provider, _ = compiled_provider(args.target)
        fake.scope = provider.scope
        people = identities(fake, provider.description["runnable_by"])
        app: Any = provider.asgi() if args.asgi else provider.wsgi()
        base = f"http://{args.host}:{args.port}{provider.prefix.rstrip('/')}"
        body = {"request_id": "demo-1", "body": example_for(provider.input_schema)}
        lines = [
            f"aptools dev: {provider.title} at {base}/",
            "  development only: tokens are checked by a fake Globus Auth",
            f"  store: {redact(os.environ['APTOOLS_STORE'])}",
            *key_line,
            "",
            *describe(people),
            "",
            "Try it:",
            *_curls(base, body, people),
            *withheld(
                fake,
                people,
                args.withhold_consent,
                _consent_resume(base, people),
                _consent_run(base, provider, people, args.withhold_consent),
            ),
            "",
            "Ctrl-C stops.",
        ]
        _serve(args, app, "\n".join(lines), provider.compile().max_body + 1)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


def _serve(args: argparse.Namespace, app: Any, banner: str, most: int) -> None:
    try:
        import uvicorn
    except ImportError:
        if args.asgi:
            raise CommandError(
                "--asgi needs uvicorn: pip install 'aptools[serve]'"
            ) from None
    try:
        if args.asgi:
            sock = socket.create_server((args.host, args.port))
        else:
            httpd = make_server(
                args.host,
                args.port,
                app,
                server_class=DevServer,
                handler_class=type("Handler", (DevRequestHandler,), {"most": most}),
            )
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
            "pick another port with --port"
        ) from None
    print(banner, flush=True)
    if args.asgi:
        from aptools.cli.uvproto import JSONErrorsProtocol

        config = uvicorn.Config(app, log_level="warning", http=JSONErrorsProtocol)
        uvicorn.Server(config).run(sockets=[sock])
    else:
        httpd.serve_forever()
