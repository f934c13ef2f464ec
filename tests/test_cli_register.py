"""``aptools register`` against the testing kit's fake Globus Auth: made once,
reused after, a dry run changes nothing, every refusal is one line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aptools.testing import MANAGE_PROJECTS, FakeGlobusAuth

from .servers import ROOT, Server, aptools_cli, free_port

pytestmark = pytest.mark.e2e

TARGET = "examples.watchasay.app"
TITLE = "What Did You Say?"
TRANSFER = "urn:globus:auth:scope:transfer.api.globus.org:all"
URL = "https://ap.example.org/skeleton"


class Admin:
    """An identity administering a project of its own at the fake."""

    def __init__(self, auth: FakeGlobusAuth, projects: int = 1) -> None:
        self.auth = auth
        self.who = auth.identity("admin@example.org", scopes=(MANAGE_PROJECTS,))
        self.projects = [auth.project(self.who) for _ in range(projects)]

    def register(
        self,
        *args: str,
        token: str | None = None,
        url: str = URL,
        target: str = TARGET,
        path: str = "",
        **env: str,
    ) -> subprocess.CompletedProcess[str]:
        base = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), path) if p),
            "GLOBUS_SDK_SERVICE_URL_AUTH": self.auth.url,
            "GLOBUS_AUTH_TOKEN": self.who.token if token is None else token,
        }
        return aptools_cli(
            "register",
            target,
            *(("--url", url) if url else ()),
            *args,
            cwd=ROOT,
            env={**base, **env},
        )

    def clients(self) -> list[dict[str, Any]]:
        found = self.auth.registrations.clients.values()
        return [c for c in found if c["project"] in self.projects]

    def scopes(self, client_id: str) -> list[dict[str, Any]]:
        found = self.auth.registrations.scopes.values()
        return [s for s in found if s["client"] == client_id]


def exported(stdout: str) -> dict[str, str]:
    pairs = (
        line.removeprefix("export ").split("=", 1)
        for line in stdout.splitlines()
        if line.startswith("export ")
    )
    return dict(pairs)


def flow(stdout: str) -> dict[str, Any]:
    start = stdout.index("{")
    return json.loads(stdout[start:])  # type: ignore[no-any-return]


def test_first_run_makes_client_secret_and_scope_then_reuses_them(
    auth: FakeGlobusAuth,
) -> None:
    admin = Admin(auth)
    first = admin.register()
    assert first.returncode == 0, first.stderr
    env = exported(first.stdout)
    [client] = admin.clients()
    assert client["name"] == TITLE and not client["public_client"]
    assert env["APTOOLS_CLIENT_ID"] == client["id"]
    [credential] = auth.registrations.credentials[client["id"]]
    assert env["APTOOLS_CLIENT_SECRET"] and credential["client"] == client["id"]
    [scope] = admin.scopes(client["id"])
    string = f"https://auth.globus.org/scopes/{client['id']}/action_all"
    assert scope["scope_string"] == string and scope["dependent_scopes"] == []
    state = flow(first.stdout)
    action = state["States"][state["StartAt"]]
    assert action["ActionUrl"] == URL and action["ActionScope"] == string
    assert action["Parameters"] == {"input_string": "hello"}  # from the schema
    assert f"scope is {string}" in first.stderr

    # Run again with what it printed exported, and the scope given: nothing new.
    again = admin.register(**env, WATCHASAY_SCOPE=string)
    assert again.returncode == 0, again.stderr
    assert exported(again.stdout) == env
    assert "created" not in again.stderr and again.stderr.count("reused") == 2
    assert "kept" in again.stderr
    assert [c["id"] for c in admin.clients()] == [client["id"]]
    assert len(auth.registrations.credentials[client["id"]]) == 1
    assert len(admin.scopes(client["id"])) == 1

    # A secret Globus Auth refuses is not kept: a new one is made.
    wrong = admin.register(**{**env, "APTOOLS_CLIENT_SECRET": "not-the-secret"})
    assert wrong.returncode == 0, wrong.stderr
    assert "Globus Auth refuses the one in APTOOLS_CLIENT_SECRET" in wrong.stderr
    renewed = exported(wrong.stdout)["APTOOLS_CLIENT_SECRET"]
    assert auth.registrations.knows(client["id"], renewed)
    assert len(auth.registrations.credentials[client["id"]]) == 2

    # Without the secret at hand, only a new secret is made (Globus Auth never
    # shows one twice); the client is found by the provider's title.
    lost = admin.register()
    assert lost.returncode == 0, lost.stderr
    assert exported(lost.stdout)["APTOOLS_CLIENT_ID"] == client["id"]
    assert (
        exported(lost.stdout)["APTOOLS_CLIENT_SECRET"] != env["APTOOLS_CLIENT_SECRET"]
    )
    assert len(admin.clients()) == 1 and len(admin.scopes(client["id"])) == 1
    assert len(auth.registrations.credentials[client["id"]]) == 3


def test_dry_run_changes_nothing(auth: FakeGlobusAuth) -> None:
    admin = Admin(auth)
    before = auth.calls["clients"], auth.calls["scopes"]
    dry = admin.register("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert admin.clients() == [] and "export " not in dry.stdout
    assert "nothing was changed" in dry.stdout
    assert f'would create "{TITLE}" in project {admin.projects[0]}' in dry.stderr
    assert "would create a client secret" in dry.stderr
    assert "would create https://auth.globus.org/scopes/NEW-CLIENT-ID/action_all" in (
        dry.stderr
    )
    assert (auth.calls["clients"], auth.calls["scopes"]) != before  # it did look
    # ActionUrl: --url, else the public URL with the prefix, else a placeholder.
    public = admin.register("--dry-run", url="", APTOOLS_PUBLIC_URL="https://h.org")
    state = flow(public.stdout)
    assert state["States"][state["StartAt"]]["ActionUrl"] == "https://h.org/skeleton"
    unknown = flow(admin.register("--dry-run", url="").stdout)
    assert unknown["States"]["WhatDidYouSay"]["ActionUrl"] == (
        "https://YOUR-HOST/skeleton"
    )

    assert admin.register().returncode == 0
    [client] = admin.clients()
    count = len(auth.registrations.credentials[client["id"]])
    dry = admin.register("--dry-run", "--dependent-scope", TRANSFER)
    assert dry.returncode == 0, dry.stderr
    assert f"would reuse {client['id']}" in dry.stderr
    assert "would set the dependent scopes" in dry.stderr
    assert len(auth.registrations.credentials[client["id"]]) == count
    assert admin.scopes(client["id"])[0]["dependent_scopes"] == []


def test_dependent_scopes_are_set_and_kept(auth: FakeGlobusAuth) -> None:
    admin = Admin(auth)
    made = admin.register("--dependent-scope", TRANSFER)
    assert made.returncode == 0, made.stderr
    [client] = admin.clients()
    [scope] = admin.scopes(client["id"])
    transfer = next(
        s["id"]
        for s in auth.registrations.scopes.values()
        if s["scope_string"] == TRANSFER
    )
    assert scope["dependent_scopes"] == [
        {"scope": transfer, "optional": False, "requires_refresh_token": True}
    ]
    env = exported(made.stdout)
    kept = admin.register("--dependent-scope", TRANSFER, **env)
    assert kept.returncode == 0 and f"reused {scope['scope_string']}" in kept.stderr
    dropped = admin.register(**env)
    assert dropped.returncode == 0, dropped.stderr
    assert "set to none" in dropped.stderr
    assert admin.scopes(client["id"])[0]["dependent_scopes"] == []


def test_the_scopes_a_provider_declares_are_its_dependent_scopes(
    auth: FakeGlobusAuth, tmp_path: Path
) -> None:
    (tmp_path / "declares.py").write_text(
        "from aptools import Provider\n"
        "provider = Provider(title='Declares', admin_contact='a@example.org',\n"
        "    scope='https://auth.globus.org/scopes/x/action_all',\n"
        "    input_schema={'type': 'object'}, prefix='/declares',\n"
        f"    dependent_scopes=[{TRANSFER!r}])\n"
        "@provider.run\n"
        "def run(request, caller):\n"
        "    return {}\n"
    )
    admin = Admin(auth)
    dry = admin.register("--dry-run", target="declares", path=str(tmp_path))
    assert dry.returncode == 0, dry.stderr
    assert TRANSFER in dry.stderr + dry.stdout
    assert admin.clients() == []  # a dry run makes nothing
    made = admin.register(target="declares", path=str(tmp_path))
    assert made.returncode == 0, made.stderr
    [client] = admin.clients()
    [scope] = admin.scopes(client["id"])
    transfer = next(
        s["id"]
        for s in auth.registrations.scopes.values()
        if s["scope_string"] == TRANSFER
    )
    assert [d["scope"] for d in scope["dependent_scopes"]] == [transfer]


def test_refusals_are_one_line(auth: FakeGlobusAuth) -> None:
    admin = Admin(auth)

    def one_line(
        done: subprocess.CompletedProcess[str], status: int, said: str
    ) -> None:
        assert done.returncode == status, done.stderr
        assert done.stderr.startswith("aptools register: ") and said in done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert done.stdout == ""

    one_line(admin.register(token=""), 2, "a token is needed")
    plain = auth.identity("plain@example.org").token  # no manage_projects
    one_line(admin.register(token=plain), 1, "HTTP 403 FORBIDDEN")
    one_line(admin.register(token="nonsense"), 1, "HTTP 401 UNAUTHORIZED")
    one_line(
        admin.register("--dependent-scope", "urn:nobody:knows"),
        1,
        "Globus Auth knows no scope urn:nobody:knows",
    )
    one_line(
        admin.register(GLOBUS_SDK_SERVICE_URL_AUTH=f"http://127.0.0.1:{free_port()}/"),
        1,
        "cannot reach Globus Auth",
    )
    one_line(
        admin.register(WATCHASAY_SCOPE="urn:globus:auth:scope:example.org:all"),
        1,
        "the provider's scope must be https://auth.globus.org/scopes/CLIENT/SUFFIX",
    )
    assert admin.clients() == []
    two = Admin(auth, projects=2)
    one_line(two.register(), 1, "you administer 2 projects; choose one: --project ID")
    chosen = two.register("--project", two.projects[1])
    assert chosen.returncode == 0, chosen.stderr
    assert [c["project"] for c in two.clients()] == [two.projects[1]]


@pytest.mark.parametrize("kind", ["gunicorn", "uvicorn"])
def test_what_it_prints_serves_and_passes_flowtest(
    auth: FakeGlobusAuth, kind: str, tmp_path: Any
) -> None:
    admin = Admin(auth)
    made = admin.register()
    assert made.returncode == 0, made.stderr
    env = exported(made.stdout)
    scope = flow(made.stdout)["States"]["WhatDidYouSay"]["ActionScope"]
    user = auth.identity("user@example.org", scopes=(scope,))
    other = auth.identity("other@example.org", scopes=(scope,))
    server = Server(kind, TARGET, "/skeleton", auth, f"sqlite:///{tmp_path}/a.db")
    # The provider authenticates with the client and secret just made (not
    # the fake's own): a token introspection refused would fail the walk.
    server.env.update(env, WATCHASAY_SCOPE=scope)
    assert env["APTOOLS_CLIENT_ID"] != auth.client_id
    with server:
        done = aptools_cli(
            "flowtest",
            server.url,
            "--token",
            user.token,
            "--other-token",
            other.token,
            "--backoff-scale",
            "0.05",
            cwd=ROOT,
            timeout=120,
        )
        assert (done.returncode, done.stdout) == (0, ""), done.stderr
