"""What the commands share: loading a provider, store URLs, startup checks."""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import urlsplit

from aptools.logjson import FORMAT_VARIABLE, FORMATS, configure_logging, log_format
from aptools.protocol.spec import Spec
from aptools.provider import Provider, ProviderConfigError
from aptools.store import redact

__all__ = [
    "STORE_ERRORS",
    "CommandError",
    "add_log_format",
    "apply_log_format",
    "compiled_provider",
    "configured_store",
    "http_url",
    "load_provider",
    "log_requests",
    "loopback",
    "port",
    "read_provider",
    "redact",
    "store_failure",
    "store_url",
    "verify_client",
]

#: Exit statuses every command shares (``call`` adds its own, see its help).
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2


class CommandError(Exception):
    """A failure the command reports as one line, ``aptools CMD: message``,
    then exits with ``status`` (1 unless told)."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


def load_provider(target: str) -> Provider:
    """The :class:`Provider` named by ``module`` or ``module:attr``.

    The working directory is searched first, as ``python -m`` would.
    Raises :class:`CommandError` when the module cannot be imported or does
    not name exactly one provider.
    """
    module_name, _, attr = target.partition(":")
    _module_name_is_dotted(module_name)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise CommandError(f"no module named {module_name!r} here") from None
        raise CommandError(f"cannot import {module_name}: {exc}") from None
    if attr:
        found = getattr(module, attr, None)
        if not isinstance(found, Provider):
            raise CommandError(f"{target} is not a Provider")
        return found
    providers = [v for v in vars(module).values() if isinstance(v, Provider)]
    if len(providers) != 1:
        raise CommandError(
            f"{module_name} defines {len(providers)} providers; name one as MODULE:ATTR"
        )
    return providers[0]


def _module_name_is_dotted(name: str) -> None:
    """Refuse a ``MODULE`` that is not a dotted module name (``echo``,
    ``mypackage.app``): a path (``./echo.py``, ``../x``) or a relative name
    (``.echo``, ``..``), which :func:`importlib.import_module` cannot take
    without a package, a file named as one (``echo.py``), or nothing."""
    if not name:
        raise CommandError(
            "MODULE is empty: name the provider's module, as MODULE or MODULE:ATTR"
        )
    dotted = all(part.isidentifier() for part in name.split("."))
    if dotted and not (name.endswith(".py") and os.path.isfile(name)):
        return
    stem = os.path.basename(name.rstrip("/" + os.sep))
    stem = stem.removesuffix(".py")
    hint = (
        f"; from the directory holding {stem}.py, name it {stem}"
        if stem.isidentifier()
        else ""
    )
    raise CommandError(
        f"{name!r} is not a module name: MODULE is a dotted Python module name "
        f"such as echo or mypackage.app, found from the working directory, not "
        f"a file path or a relative name{hint}"
    )


def read_provider(
    target: str, environment: Mapping[str, str] | None = None
) -> Provider:
    """The :class:`Provider` named by ``target``, loaded to be read (its
    description, scope, routes, schema), not to serve.

    A module builds its apps when imported (``app = provider.wsgi()``), and a
    build wants what only serving needs: client credentials, a store, and for
    a job that keeps tokens an encryption key. Those left unset get stand-ins
    for the import (the ``memory:`` store always: reading opens no database),
    ``environment`` is set over them, and ``os.environ`` is as it was after.
    Raises :class:`CommandError` as :func:`load_provider` does.
    """
    from cryptography.fernet import Fernet

    saved = dict(os.environ)
    stand_ins = {
        "APTOOLS_CLIENT_ID": "unregistered",
        "APTOOLS_CLIENT_SECRET": "unregistered",
        "APTOOLS_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    os.environ.update({k: v for k, v in stand_ins.items() if not os.environ.get(k)})
    os.environ.update({"APTOOLS_STORE": "memory:", **(environment or {})})
    try:
        provider = load_provider(target)
        provider.compile()  # a provider that cannot be built is refused here
        return provider
    finally:
        os.environ.clear()
        os.environ.update(saved)


def http_url(text: str) -> str:
    """``text`` if it is an ``http(s)://host[:port]...`` URL; otherwise
    :class:`CommandError` with :data:`EXIT_USAGE` (a URL without a scheme,
    another scheme, no host, a bad port), before anything is sent."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - read to check it
    except ValueError as exc:
        raise CommandError(f"not a URL: {text!r} ({exc})", EXIT_USAGE) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise CommandError(
            f"not an http(s) URL: {text!r}; give one such as "
            "http://127.0.0.1:8000/prefix",
            EXIT_USAGE,
        )
    return text


def loopback(host: str) -> bool:
    """Whether ``host`` names this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port(text: str) -> int:
    """An argparse type: a TCP port number, 1..65535."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a port is a number, 1..65535") from None
    if not 0 < number < 65536:
        raise argparse.ArgumentTypeError("a port is 1..65535")
    return number


def log_requests(level: int = logging.WARNING) -> None:
    """Send records of ``level`` and up, and the access log, to stderr,
    unless logging is set up, in the format ``APTOOLS_LOG_FORMAT`` names
    (``text`` or ``json``: :mod:`aptools.logjson`)."""
    try:
        configure_logging(level)
    except ValueError as exc:
        raise CommandError(str(exc), status=EXIT_USAGE) from None
    logging.getLogger("aptools.access").setLevel(logging.INFO)


def add_log_format(parser: argparse.ArgumentParser) -> None:
    """The ``--log-format`` option (``text`` or ``json``)."""
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default=None,
        help=f"log lines as text (default) or one JSON object each "
        f"(default: ${FORMAT_VARIABLE}, else text)",
    )


def apply_log_format(args: argparse.Namespace) -> str:
    """The log format asked for by ``--log-format`` or the environment,
    exported to the servers this process starts; a bad
    ``APTOOLS_LOG_FORMAT`` is a usage error."""
    try:
        chosen = log_format(args.log_format)
    except ValueError as exc:
        raise CommandError(str(exc), status=EXIT_USAGE) from None
    os.environ[FORMAT_VARIABLE] = chosen
    return chosen


def configured_store(provider: Provider | None) -> str:
    """The store URL ``provider`` opens, as configured (password included):
    given in code, else ``APTOOLS_STORE``, else the default."""
    from aptools.store import DEFAULT_URL, Store

    # The provider keeps what it was given; there is no public accessor yet.
    given = getattr(provider, "_store", None)
    if isinstance(given, Store):
        return f"{type(given).__name__} (given in code)"
    if isinstance(given, str) and given:
        return given
    return os.environ.get("APTOOLS_STORE") or DEFAULT_URL


def store_url(provider: Provider) -> str:
    """The store URL ``provider`` opens, redacted (see :func:`redact`)."""
    return redact(configured_store(provider))


def store_failure(provider: Provider | None, exc: BaseException) -> CommandError:
    """One line for a provider or store that would not open, naming the store
    URL once; credentials never in it. ``provider`` is None if it failed to
    load. A message that already names the (redacted) URL gets no suffix."""
    raw = configured_store(provider)
    shown = redact(raw)
    said = str(exc).replace(raw, shown)
    try:
        password = urlsplit(raw).password
    except ValueError:
        password = None
    if password:
        said = said.replace(password, "***")
    if shown in said:
        return CommandError(said)
    return CommandError(f"{said} (store {shown})")


#: What building a provider raises for its store: a bad URL, a file or
#: database that cannot be opened, a schema made by a newer aptools (the
#: stores raise :class:`ValueError` for that).
STORE_ERRORS: Final = (ValueError, OSError, sqlite3.Error)


def compiled_provider(
    target: str,
    *,
    prepare: Callable[[Provider], None] | None = None,
    verify: Callable[[Spec], None] | None = None,
) -> tuple[Provider, Spec]:
    """The provider ``target`` names, compiled (its store opened).

    ``prepare`` sees the loaded provider before it is compiled, ``verify``
    the compiled spec (to read from its store, say). This is the one place a
    command turns a provider or store that would not open into one line:
    raises :class:`~aptools.ProviderConfigError` for a configuration error
    and :class:`CommandError` (one line, see :func:`store_failure`) for a
    store that would not open (:data:`STORE_ERRORS`), in loading, compiling
    or ``verify``.
    """
    provider: Provider | None = None
    try:
        provider = load_provider(target)
        if prepare is not None:
            prepare(provider)
        spec = provider.compile()
        if verify is not None:
            verify(spec)
        return provider, spec
    except ProviderConfigError:
        raise
    except STORE_ERRORS as exc:
        raise store_failure(provider, exc) from None


def verify_client(provider: Provider) -> None:
    """Ask Globus Auth whether the provider's client id and secret are good.

    A token introspection with a made-up token answers ``active: false`` to a
    known client, and 401 to bad client credentials (RFC 7662 section 2.3).
    Raises :class:`CommandError` for refused credentials, an unreachable
    Globus Auth or any other answer; the secret never appears in it.
    """
    import globus_sdk

    client = provider.compile().auth.client()
    try:
        client.oauth2_token_introspect("aptools-client-credentials-check")
    except globus_sdk.GlobusAPIError as exc:
        if exc.http_status in (400, 401, 403):
            raise CommandError(
                f"Globus Auth refused this client's credentials (HTTP "
                f"{exc.http_status}): check APTOOLS_CLIENT_ID and "
                "APTOOLS_CLIENT_SECRET (or client_id= / client_secret=)"
            ) from None
        raise CommandError(
            f"Globus Auth answered HTTP {exc.http_status} when asked to check "
            "this client's credentials; try again later"
        ) from None
    except globus_sdk.NetworkError as exc:
        raise CommandError(
            f"cannot reach Globus Auth at {client.base_url} to check this "
            f"client's credentials ({type(exc).__name__})"
        ) from None
