"""The ``aptools`` command, one module per subcommand.

- ``dev``: serve a provider locally with a fake Globus Auth (:mod:`.dev`);
- ``fakeauth``: the fake Globus Auth on a port of its own (:mod:`.fakeauth`);
- ``check``: build a provider, check its store and client (:mod:`.check`);
- ``openapi``: print its OpenAPI document (:mod:`.openapi`);
- ``serve``: serve it with gunicorn or uvicorn (:mod:`.serve`);
- ``worker``: run its background jobs, serving nothing (:mod:`.worker`);
- ``rekey``: re-encrypt the tokens its jobs keep with the newest key
  (:mod:`.rekey`);
- ``jobs``: its job console: list, show, cancel, fail, requeue (:mod:`.jobs`);
- ``call``: a small client for any provider (:mod:`.call`);
- ``flowtest``: drive a provider as Globus Flows does (:mod:`.flowtest`);
- ``register``: its client and scope in Globus Auth (:mod:`.register`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from aptools.cli import (
    call,
    check,
    dev,
    fakeauth,
    flowtest,
    jobs,
    openapi,
    register,
    rekey,
    serve,
    worker,
)
from aptools.cli.common import EXIT_ERROR, CommandError, load_provider
from aptools.cli.serve import asgi_app, tcp_listener, wsgi_app
from aptools.provider import ProviderConfigError

__all__ = ["asgi_app", "load_provider", "main", "tcp_listener", "wsgi_app"]

#: In the order ``aptools --help`` lists them.
COMMANDS = (
    dev,
    fakeauth,
    check,
    openapi,
    serve,
    worker,
    rekey,
    jobs,
    call,
    flowtest,
    register,
)


def parser() -> argparse.ArgumentParser:
    """The ``aptools`` argument parser, one subcommand per module."""
    top = argparse.ArgumentParser(
        prog="aptools",
        description=(
            "Build, try, check, serve, call, test and register Globus Action Providers."
        ),
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aptools`` console script; returns the exit status."""
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing more, as other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR


def _run(argv: Sequence[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        status: int = args.func(args)
        sys.stdout.flush()
    except CommandError as exc:
        return _fail(args.command, str(exc), exc.status)
    except ProviderConfigError as exc:
        return _fail(args.command, str(exc), EXIT_ERROR)
    return status


def _fail(command: str, message: str, status: int) -> int:
    print(f"aptools {command}: {message}", file=sys.stderr)
    return status
