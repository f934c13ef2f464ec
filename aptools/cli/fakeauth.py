"""``aptools fakeauth``: the fake Globus Auth on a port, with three identities.

Serve a provider under gunicorn or uvicorn against it: the command prints the
environment variables that point globus-sdk and aptools at it, and tokens.
"""

from __future__ import annotations

import argparse
import os
import shlex
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aptools.cli.common import (
    CommandError,
    http_url,
    loopback,
    port,
    read_provider,
)
from aptools.testing._fakedirectory import CONSENT_PATH
from aptools.vocabulary import ALL_AUTHENTICATED, GROUP_URN, IDENTITY_URN

if TYPE_CHECKING:
    from aptools.testing import FakeGlobusAuth, FakeIdentity

__all__ = ["Identities", "add_parser", "consent", "fakeauth", "identities", "withheld"]

HELP = "serve a fake Globus Auth; print its environment and tokens"

# Fixed, so that tokens printed once keep working after a restart.
RUNNER: Final = ("3b0e6a5e-5c6e-4f3b-9d4a-6d2f2f9c1a01", "dev-token-alice")
OUTSIDER: Final = ("7c1d2b4e-0a9f-4e8d-8b6c-5e4f3a2b1c02", "dev-token-bob")
SHARED: Final = ("5a2e9f40-1d7b-4c6e-a3f8-2b9d0c4e1f03", "dev-token-carol")
#: Printed tokens last this long (seconds): a working day and more.
TOKEN_LIFETIME: Final = 30 * 24 * 3600
#: The people's fixed tokens, by name (``aptools fakeauth consent --identity``).
DEV_TOKENS: Final = {"alice": RUNNER[1], "bob": OUTSIDER[1], "carol": SHARED[1]}
#: A scope of another service: a token for it is not for the provider.
OTHER_SCOPE: Final = "urn:globus:auth:scope:transfer.api.globus.org:all"


@dataclass(frozen=True)
class Identities:
    """The three people dev mode and ``fakeauth`` offer, with what they may do."""

    runner: FakeIdentity
    outsider: FakeIdentity
    outsider_note: str
    shared: FakeIdentity
    #: Whether bob's token is for the provider's scope (else: 401 everywhere).
    outsider_has_scope: bool


def identities(fake: FakeGlobusAuth, runnable_by: Sequence[str]) -> Identities:
    """alice may run; bob may not; carol may not run but is shared with.

    alice takes the first identity ``runnable_by`` names, and joins its groups.
    """
    runner_id = next(
        (
            p.removeprefix(IDENTITY_URN)
            for p in runnable_by
            if p.startswith(IDENTITY_URN)
        ),
        RUNNER[0],
    )
    alice = _person(fake, "alice@example.org", runner_id, RUNNER[1])
    for group in (p for p in runnable_by if p.startswith(GROUP_URN)):
        fake.group(alice, id=group.removeprefix(GROUP_URN))
    if ALL_AUTHENTICATED in runnable_by:
        bob = _person(fake, "bob@example.org", *OUTSIDER, scopes=(OTHER_SCOPE,))
        note = "its token is for another service's scope: answered 401"
    else:
        bob = _person(fake, "bob@example.org", *OUTSIDER)
        note = "not in runnable_by: run is answered 403"
    carol = _person(fake, "carol@example.org", *SHARED)
    return Identities(
        runner=alice,
        outsider=bob,
        outsider_note=note,
        shared=carol,
        outsider_has_scope=ALL_AUTHENTICATED not in runnable_by,
    )


def _person(
    fake: FakeGlobusAuth,
    name: str,
    id: str,
    token: str,
    scopes: tuple[str, ...] | None = None,
) -> FakeIdentity:
    who = fake.identity(name, id=id, token=token, scopes=scopes)
    fake.token(who, scopes=scopes, value=token, expires_in=TOKEN_LIFETIME)
    return who


def describe(people: Identities) -> list[str]:
    """The lines that introduce the identities."""
    a, b, c = people.runner, people.outsider, people.shared
    return [
        "Identities:",
        f"  alice  {a.urn}  token {a.token}  (may run the provider)",
        f"  bob    {b.urn}  token {b.token}  ({people.outsider_note})",
        f"  carol  {c.urn}  token {c.token}  (share with her: monitor_by or manage_by)",
    ]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "fakeauth",
        help=HELP,
        description=(
            "Serve the fake Globus Auth of aptools.testing on HOST:PORT, print "
            "`export` lines for its environment and three identities' tokens, and "
            "run until Ctrl-C. In another shell, after the exports: `aptools serve "
            "MODULE` (gunicorn or uvicorn) serves against it. Development only."
        ),
    )
    parser.add_argument(
        "target",
        nargs="?",
        help="MODULE or MODULE:ATTR: take the scope and runnable_by from this "
        "Provider; or `consent grant|revoke|withhold SCOPE` to tell a running "
        "fake that an identity (--identity) gave, took back or never gave a consent",
    )
    parser.add_argument("more", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=port, default=8400)
    parser.add_argument("--scope", help="the provider's scope (default: the target's)")
    parser.add_argument(
        "--withhold-consent",
        action="append",
        default=[],
        metavar="SCOPE",
        help="alice has not consented to SCOPE (repeatable): a job acting for "
        "her there waits INACTIVE until `aptools fakeauth consent grant`",
    )
    parser.add_argument(
        "--clock-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="the fake's clock is this far ahead of this host's (negative: "
        "behind), to try a provider against a skewed Globus Auth (default 0)",
    )
    parser.add_argument(
        "--token-lifetime",
        type=_lifetime,
        default=None,
        metavar="SECONDS",
        help="how long the access tokens of dependent grants and refreshes live "
        "(default 172800, two days): short ones make kept tokens refresh often",
    )
    parser.add_argument(
        "--rotate-refresh-tokens",
        action="store_true",
        help="each refresh answers a new refresh token and voids the old one",
    )
    parser.add_argument(
        "--identity",
        default="alice",
        choices=sorted(DEV_TOKENS),
        help="with consent: whose consent (default: alice)",
    )
    parser.add_argument(
        "--url",
        help="with consent: the fake's URL (default: GLOBUS_SDK_SERVICE_URL_AUTH, "
        "else http://127.0.0.1:8400/)",
    )
    parser.set_defaults(func=fakeauth)


def fakeauth(args: argparse.Namespace) -> int:
    """Serve the fake until interrupted (or, with ``consent``, tell it)."""
    from aptools.testing import FakeGlobusAuth

    if args.target == "consent":
        return consent(args)
    if args.more:
        raise CommandError(f"unexpected arguments: {' '.join(args.more)}", status=2)

    if not loopback(args.host):
        raise CommandError(
            f"refusing to listen on {args.host}: the fake accepts made-up tokens "
            "and is for this machine only; use 127.0.0.1"
        )
    tuned: dict[str, Any] = {
        "clock_offset": args.clock_offset,
        "rotate_refresh_tokens": args.rotate_refresh_tokens,
    }
    if args.token_lifetime is not None:
        tuned["dependent_token_lifetime"] = args.token_lifetime
    try:
        fake = FakeGlobusAuth(host=args.host, port=args.port, **tuned)
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    runnable_by: Sequence[str] = [ALL_AUTHENTICATED]
    env = fake.env()
    if args.target:
        provider = read_provider(args.target, env)
        fake.scope = provider.scope
        runnable_by = provider.description["runnable_by"]
    if args.scope:
        fake.scope = args.scope
    people = identities(fake, runnable_by)
    lines = [
        f"aptools fakeauth: a fake Globus Auth at {fake.url} (development only)",
        f"  scope: {fake.scope}",
        *_tuning(args),
        "",
        "# in the shell that serves the provider:",
        *(f"export {name}={shlex.quote(value)}" for name, value in env.items()),
        "",
        *describe(people),
        *withheld(fake, people, args.withhold_consent, None),
        "",
        "Ctrl-C stops.",
    ]
    fake.start()
    print("\n".join(lines), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


def _lifetime(text: str) -> int:
    """An argparse type: a token lifetime, whole seconds, 1 or more."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("whole seconds, 1 or more") from None
    if number < 1:
        raise argparse.ArgumentTypeError("whole seconds, 1 or more")
    return number


def _tuning(args: argparse.Namespace) -> list[str]:
    """Banner lines for what differs from the real Globus Auth's defaults."""
    lines = []
    if args.clock_offset:
        lines.append(f"  clock: {args.clock_offset:+g} s from this host's")
    if args.token_lifetime is not None:
        lines.append(f"  dependent tokens live {args.token_lifetime} s")
    if args.rotate_refresh_tokens:
        lines.append("  refresh tokens rotate at each refresh")
    return lines


def withheld(
    fake: FakeGlobusAuth,
    people: Identities,
    scopes: Sequence[str],
    resume: str | None,
    run: Sequence[str] = (),
) -> list[str]:
    """Withhold alice's consent to ``scopes`` and say how to give it: the
    steps INACTIVE, consent, resume (``run``: the commands that start the
    action and wait until it is INACTIVE; ``resume``: the one that resumes
    it; each printed after its step when given)."""
    if not scopes:
        return []
    for scope in scopes:
        fake.withhold_consent(people.runner, scope)
    url = shlex.quote(fake.url)
    lines = [
        "",
        "Consent: alice has not consented to "
        + ", ".join(shlex.quote(s) for s in scopes),
        "# 1. an action whose job acts for her there waits: INACTIVE, its details",
        "#    a consent request (code ConsentRequired, authorization_parameters)",
        *run,
        "# 2. she consents:",
        *(
            f"aptools fakeauth consent grant {shlex.quote(s)} --identity alice"
            f" --url {url}"
            for s in scopes
        ),
        "# 3. she resumes it; the job goes on from its last checkpoint:",
        resume or "#    POST .../actions/ACTION_ID/resume with her token",
        "# (`consent revoke` takes a consent back: the job waits again)",
    ]
    return lines


def consent(args: argparse.Namespace) -> int:
    """``aptools fakeauth consent grant|revoke|withhold SCOPE``: tell a running
    fake that ``--identity`` gave, took back or never gave the consent."""
    import requests

    if len(args.more) != 2 or args.more[0] not in ("grant", "revoke", "withhold"):
        raise CommandError(
            "usage: aptools fakeauth consent grant|revoke|withhold SCOPE "
            "[--identity alice] [--url URL]",
            status=2,
        )
    act, scope = args.more
    base = args.url or os.environ.get(
        "GLOBUS_SDK_SERVICE_URL_AUTH", "http://127.0.0.1:8400/"
    )
    http_url(base)
    try:
        answer = requests.post(
            base.rstrip("/") + CONSENT_PATH,
            json={"scope": scope, "consent": act},
            headers={"Authorization": f"Bearer {DEV_TOKENS[args.identity]}"},
            timeout=10,
        )
    except requests.RequestException as exc:
        raise CommandError(
            f"no fake Globus Auth answers at {base} ({type(exc).__name__})"
        ) from None
    if answer.status_code != 200:
        raise CommandError(f"the fake answered HTTP {answer.status_code}")
    done = {
        "grant": "consented to",
        "revoke": "took back the consent to",
        "withhold": "has not consented to",
    }[act]
    print(f"{args.identity} {done} {scope}")
    return 0
