"""``aptools register``: the provider's client, secret and scope in Globus Auth.

Through globus-sdk's :class:`~globus_sdk.AuthClient`, as the person running
it (a token with Globus Auth's ``manage_projects`` scope). Each step first
looks for what an earlier run made, so running it again changes nothing:

0. the dependent scopes, which must exist;
1. the confidential client: the one named by ``APTOOLS_CLIENT_ID`` or by the
   provider's scope URL, else the one of the provider's title in a project
   of yours, else a new one in ``--project`` (or your only project);
2. the provider's scope, ``https://auth.globus.org/scopes/CLIENT/SUFFIX``
   with the suffix of the provider's scope URL, and its dependent scopes
   (:func:`dependent_scopes`, and ``--dependent-scope``): made, or its
   dependent scopes set right;
3. a client secret, last: the one in ``APTOOLS_CLIENT_SECRET`` when
   ``APTOOLS_CLIENT_ID`` names this client and Globus Auth takes it, else a
   new one (Globus Auth shows a secret only once).

Then it prints the ``export`` lines and a one-state flow calling the
provider. ``--dry-run`` only reads, and says what it would do.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aptools.cli.call import note
from aptools.cli.common import EXIT_USAGE, CommandError, read_provider
from aptools.flows import one_state_flow
from aptools.provider import Provider
from aptools.schema import example_for

if TYPE_CHECKING:
    import globus_sdk

__all__ = ["add_parser", "dependent_scopes", "register"]

HELP = "create or reuse the provider's Globus Auth client, secret and scope"

#: The environment variable holding a token when ``--token`` is not given.
TOKEN_VARIABLE: Final = "GLOBUS_AUTH_TOKEN"  # noqa: S105 - a name, not a token
#: The name the client secrets made here go by in Globus Auth.
CREDENTIAL_NAME: Final = "aptools"
_SCOPE_URL: Final = re.compile(r"^https://auth\.globus\.org/scopes/([^/]+)/([^/]+)$")
_SUFFIX: Final = re.compile(r"^[a-z0-9_]+$")
_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "register",
        help=HELP,
        description=HELP + ", idempotently; print the environment to export "
        "and a Globus Flows Action state.",
        epilog=f"The token (--token, else ${TOKEN_VARIABLE}) is yours, with the "
        "scope urn:globus:auth:scope:auth.globus.org:manage_projects. "
        "Exit status: 0 done; 1 Globus Auth refused or could not be reached; "
        "2 a usage error.",
    )
    parser.add_argument("target", help="MODULE or MODULE:ATTR naming the Provider")
    parser.add_argument(
        "--token", help=f"a Globus Auth access token (default: ${TOKEN_VARIABLE})"
    )
    parser.add_argument(
        "--project", help="the project a new client goes in (default: your only one)"
    )
    parser.add_argument(
        "--url",
        help="the provider's ActionUrl (default: its public_url or "
        "APTOOLS_PUBLIC_URL, with its prefix)",
    )
    parser.add_argument(
        "--dependent-scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help="a scope the provider acts under for its callers (repeatable), "
        "besides those it declares",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="say what it would do; change nothing"
    )
    parser.set_defaults(func=register)


def dependent_scopes(provider: Provider) -> tuple[str, ...]:
    """The scopes ``provider`` acts under for its callers (dependent-token
    grants), which its own scope must list as dependent scopes so that one
    consent covers them: what it declares (:attr:`Provider.dependent_scopes`,
    from ``dependent_scopes=`` and its job's ``scopes``)."""
    return provider.dependent_scopes


@dataclass
class _Plan:
    """What a run found and did (or, dry, would do)."""

    dry: bool
    client_id: str | None = None
    secret: str | None = None
    scope: str | None = None

    def step(self, what: str, did: str, would: str) -> None:
        note(f"{what}: {'would ' + would if self.dry else did}")


def register(args: argparse.Namespace) -> int:
    """Register the provider (see the module's description)."""
    token = args.token or os.environ.get(TOKEN_VARIABLE)
    if not token:
        raise CommandError(
            f"a token is needed: --token, or ${TOKEN_VARIABLE}", EXIT_USAGE
        )
    known_id = os.environ.get("APTOOLS_CLIENT_ID")
    known_secret = os.environ.get("APTOOLS_CLIENT_SECRET")
    provider = read_provider(args.target)
    match = _SCOPE_URL.match(provider.scope)
    if match is None or not _SUFFIX.match(match[2]):
        raise CommandError(
            "the provider's scope must be https://auth.globus.org/scopes/CLIENT/"
            "SUFFIX (SUFFIX of a-z, 0-9 and _), such as .../<client-id>/action_all"
        )
    named, suffix = match[1], match[2]
    wanted = tuple(dict.fromkeys((*dependent_scopes(provider), *args.dependent_scope)))
    auth = _auth_client(token)
    plan = _Plan(dry=args.dry_run)
    with _globus_errors(auth):
        # Whatever can be refused is asked first, and the secret made last:
        # Globus Auth shows a secret once, so none is made and then lost.
        ids = _scope_ids(auth, wanted)
        _client(auth, plan, provider, [known_id, named], args.project)
        _scope(auth, plan, provider, suffix, ids)
        _secret(auth, plan, known_id, known_secret)
    _print(plan, provider, args.url)
    return 0


def _auth_client(token: str) -> globus_sdk.AuthClient:
    import globus_sdk

    return globus_sdk.AuthClient(authorizer=globus_sdk.AccessTokenAuthorizer(token))


@contextmanager
def _globus_errors(auth: globus_sdk.AuthClient) -> Iterator[None]:
    """Globus Auth's refusals and outages as one line each."""
    import globus_sdk

    try:
        yield
    except globus_sdk.GlobusAPIError as exc:
        said = " ".join(str(exc.message or "").split())[:200]
        raise CommandError(
            f"Globus Auth answered HTTP {exc.http_status} {exc.code}: {said}".rstrip(
                ": "
            )
        ) from None
    except globus_sdk.NetworkError as exc:
        raise CommandError(
            f"cannot reach Globus Auth at {auth.base_url} ({type(exc).__name__})"
        ) from None


def _client(
    auth: globus_sdk.AuthClient,
    plan: _Plan,
    provider: Provider,
    candidates: Sequence[str | None],
    project: str | None,
) -> None:
    import globus_sdk

    for candidate in candidates:
        if candidate and _UUID.match(candidate):
            try:
                found = auth.get_client(client_id=candidate)["client"]
            except globus_sdk.GlobusAPIError as exc:
                if exc.http_status not in (403, 404):
                    raise
                continue
            plan.client_id = found["id"]
            plan.step("client", f"reused {found['id']}", f"reuse {found['id']}")
            return
    for client in auth.get_clients():
        if client["name"] == provider.title and not client.get("public_client"):
            plan.client_id = client["id"]
            plan.step("client", f"reused {client['id']}", f"reuse {client['id']}")
            return
    project = project or _only_project(auth)
    if plan.dry:
        plan.step("client", "", f'create "{provider.title}" in project {project}')
        return
    made = auth.create_client(
        provider.title,
        project,
        client_type="hybrid_confidential_client_resource_server",
    )["client"]
    plan.client_id = made["id"]
    plan.step("client", f"created {made['id']} in project {project}", "")


def _only_project(auth: globus_sdk.AuthClient) -> str:
    ids = [str(p["id"]) for p in auth.get_projects()]
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise CommandError(
            "you administer no Globus Auth project: make one at "
            "https://app.globus.org/settings/developers, or give --project"
        )
    raise CommandError(f"you administer {len(ids)} projects; choose one: --project ID")


def _secret(
    auth: globus_sdk.AuthClient,
    plan: _Plan,
    known_id: str | None,
    known_secret: str | None,
) -> None:
    why = ""
    if plan.client_id is not None and plan.client_id == known_id and known_secret:
        if _secret_works(known_id, known_secret):
            plan.secret = known_secret
            plan.step(
                "secret", "kept (APTOOLS_CLIENT_SECRET)", "keep APTOOLS_CLIENT_SECRET"
            )
            return
        why = "Globus Auth refuses the one in APTOOLS_CLIENT_SECRET; "
    if plan.dry:
        named = f'create a client secret named "{CREDENTIAL_NAME}"'
        plan.step("secret", "", f"{named} ({why.rstrip('; ')})" if why else named)
        return
    assert plan.client_id is not None
    made = auth.create_client_credential(plan.client_id, CREDENTIAL_NAME)
    plan.secret = made["credential"]["secret"]
    plan.step("secret", f"{why}created ({made['credential']['id']})", "")


def _secret_works(client_id: str, secret: str) -> bool:
    """Whether Globus Auth takes ``secret`` for ``client_id``: a token
    introspection (of a made-up token) is answered to good client credentials
    and refused with 401 to others (RFC 7662 section 2.3)."""
    import globus_sdk

    client = globus_sdk.ConfidentialAppAuthClient(client_id, secret)
    try:
        client.oauth2_token_introspect("aptools-client-credentials-check")
    except globus_sdk.GlobusAPIError as exc:
        if exc.http_status in (400, 401, 403):
            return False
        raise
    return True


def _scope_ids(auth: globus_sdk.AuthClient, wanted: Sequence[str]) -> dict[str, str]:
    """The ids of the scopes ``wanted`` (dependent scopes are named by id)."""
    if not wanted:
        return {}
    ids = {
        found["scope_string"]: str(found["id"])
        for found in auth.get_scopes(scope_strings=list(wanted))["scopes"]
    }
    missing = [s for s in wanted if s not in ids]
    if missing:
        raise CommandError(f"Globus Auth knows no scope {missing[0]}")
    return ids


def _scope(
    auth: globus_sdk.AuthClient,
    plan: _Plan,
    provider: Provider,
    suffix: str,
    ids: dict[str, str],
) -> None:
    wanted = list(ids)
    import globus_sdk

    specs = [
        globus_sdk.DependentScopeSpec(
            ids[s], optional=False, requires_refresh_token=True
        )
        for s in wanted
    ]
    if plan.client_id is None:  # dry run, client still to make
        plan.scope = f"https://auth.globus.org/scopes/NEW-CLIENT-ID/{suffix}"
        plan.step("scope", "", f"create {plan.scope}{_with(wanted)}")
        return
    plan.scope = f"https://auth.globus.org/scopes/{plan.client_id}/{suffix}"
    existing = auth.get_scopes(scope_strings=[plan.scope])["scopes"]
    if not existing:
        if not plan.dry:
            auth.create_scope(
                plan.client_id,
                provider.title,
                provider.description.get("description") or provider.title,
                suffix,
                dependent_scopes=specs,
                allows_refresh_token=True,
            )
        plan.step(
            "scope",
            f"created {plan.scope}{_with(wanted)}",
            f"create {plan.scope}{_with(wanted)}",
        )
        return
    scope = existing[0]
    have = {str(d["scope"]) for d in scope.get("dependent_scopes") or ()}
    if have == {spec["scope"] for spec in specs}:
        plan.step("scope", f"reused {plan.scope}", f"reuse {plan.scope}")
        return
    if not plan.dry:
        auth.update_scope(scope["id"], dependent_scopes=specs)
    plan.step(
        "scope",
        f"dependent scopes of {plan.scope} set{_with(wanted) or ' to none'}",
        f"set the dependent scopes of {plan.scope}{_with(wanted) or ' to none'}",
    )


def _with(scopes: Sequence[str]) -> str:
    return f" with dependent scopes {' '.join(scopes)}" if scopes else ""


def _action_url(provider: Provider, given: str | None) -> str:
    if given:
        return given.rstrip("/")
    base = str(provider.openapi()["servers"][0]["url"])
    if not base.startswith(("http://", "https://")):
        base = "https://YOUR-HOST" + base.rstrip("/")
    return base.rstrip("/") + (provider.prefix if provider.prefix != "/" else "")


def _print(plan: _Plan, provider: Provider, url: str | None) -> None:
    if plan.dry:
        print("# nothing was changed (--dry-run)")
    else:
        print(f"export APTOOLS_CLIENT_ID={plan.client_id}")
        print(f"export APTOOLS_CLIENT_SECRET={plan.secret}")
    scope = plan.scope or provider.scope
    if scope != provider.scope:
        note(f"note: the provider's scope is {scope}; give it as Provider(scope=...)")
    state = one_state_flow(
        provider.title,
        _action_url(provider, url),
        example_for(provider.input_schema),
    )
    # The scope Flows asks the user to consent to for this state.
    state["States"][state["StartAt"]]["ActionScope"] = scope
    print("# a Globus Flows definition calling the provider:")
    print(json.dumps(state, indent=2))
