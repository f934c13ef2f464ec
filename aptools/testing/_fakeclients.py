"""The fake Globus Auth's developer API: projects, clients, client secrets and
scopes, in the shapes globus-sdk's own testing fixtures give them
(``globus_sdk/testing/data/auth/``: ``create_client``, ``get_clients``,
``create_client_credential``, ``create_scope``, ``get_scopes``,
``update_scope``), so that ``globus_sdk.AuthClient`` works against it.

Callers authenticate with a bearer token carrying :data:`MANAGE_PROJECTS`;
they see and change only what belongs to projects they administer. Scopes of
other services (Transfer, Groups, ...) are known from the start, as the real
service knows them, so that they can be named as dependent scopes.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs

from aptools.vocabulary import GROUPS_SCOPE

__all__ = ["KNOWN_SCOPES", "MANAGE_PROJECTS", "FakeClients", "auth_error"]

#: The scope a token needs to call the developer API.
MANAGE_PROJECTS: Final = "urn:globus:auth:scope:auth.globus.org:manage_projects"
#: Scopes of other services, known to the fake from the start.
KNOWN_SCOPES: Final = (
    "urn:globus:auth:scope:transfer.api.globus.org:all",
    GROUPS_SCOPE,
    "https://auth.globus.org/scopes/facd7ccc-c5f4-42aa-916b-a0e270e2c2a9/all",
)
_PRIVATE_GRANTS: Final = [
    "authorization_code",
    "client_credentials",
    "refresh_token",
    "urn:globus:auth:grant_type:dependent_token",
]
_IDENTITY_PROVIDER: Final = "41143743-f3c8-4d60-bbdb-eeecaba85bd9"
_SUFFIX_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")

Answer = tuple[int, Any]


def auth_error(status: int, code: str, detail: str) -> Answer:
    """An error in Globus Auth's shape (as ``testing/data/auth/_common.py``)."""
    return status, {
        "errors": [
            {
                "status": str(status),
                "id": str(uuid.uuid4()),
                "code": code,
                "detail": detail,
                "title": code.replace("_", " ").title(),
            }
        ],
        "error": code.lower(),
        "error_description": detail,
    }


def _identity(identity_id: str, username: str) -> dict[str, Any]:
    return {
        "identity_provider": _IDENTITY_PROVIDER,
        "identity_type": "login",
        "organization": None,
        "status": "used",
        "id": identity_id,
        "name": username,
        "username": username,
        "email": username if "@" in username else None,
    }


class FakeClients:
    """Projects, clients, credentials and scopes, each kept by id.

    :meth:`project` makes a project that identities administer; the
    dictionaries :attr:`clients`, :attr:`credentials` (by client id) and
    :attr:`scopes` hold what was registered, for tests to read.
    """

    def __init__(self) -> None:
        self.projects: dict[str, dict[str, Any]] = {}
        self.clients: dict[str, dict[str, Any]] = {}
        self.credentials: dict[str, list[dict[str, Any]]] = {}
        self.scopes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        for scope in KNOWN_SCOPES:
            self.add_scope(scope)

    # -- set-up ----------------------------------------------------------------

    def project(self, *admins: tuple[str, str], name: str = "Test project") -> str:
        """A new project administered by ``admins``, (identity id, username)
        pairs; its id."""
        project_id = str(uuid.uuid4())
        with self._lock:
            self.projects[project_id] = {
                "id": project_id,
                "display_name": name,
                "project_name": name,
                "contact_email": "ops@example.org",
                "admin_ids": [i for i, _ in admins],
                "admin_group_ids": None,
                "admins": {
                    "identities": [_identity(i, name) for i, name in admins],
                    "groups": [],
                },
            }
        return project_id

    def add_scope(self, scope_string: str) -> str:
        """Make a scope of another service known (advertised); its id."""
        scope_id = str(uuid.uuid4())
        with self._lock:
            self.scopes[scope_id] = {
                "scope_string": scope_string,
                "allows_refresh_token": True,
                "id": scope_id,
                "advertised": True,
                "required_domains": [],
                "name": scope_string,
                "description": scope_string,
                "client": None,
                "dependent_scopes": [],
            }
        return scope_id

    def knows(self, client_id: str, secret: str) -> bool:
        """Whether ``secret`` is one of the client ``client_id``'s secrets."""
        with self._lock:
            held = self.credentials.get(client_id, ())
            return any(secrets.compare_digest(c["secret"], secret) for c in held)

    # -- the API --------------------------------------------------------------------

    def answer(
        self, method: str, route: str, query: str, body: Any, caller: str
    ) -> Answer:
        """The answer to ``method route?query`` with JSON ``body``, for the
        identity id ``caller``."""
        parts = route.removeprefix("/v2/api/").split("/")
        with self._lock:
            mine = {p for p, doc in self.projects.items() if caller in doc["admin_ids"]}
            if parts == ["projects"] and method == "GET":
                return 200, {"projects": [self.projects[p] for p in sorted(mine)]}
            if parts[0] == "clients":
                return self._clients(method, parts[1:], body, mine)
            if parts[0] == "scopes":
                return self._scopes(method, parts[1:], query, body, mine)
        return auth_error(404, "NOT_FOUND", "unknown endpoint")

    def _clients(
        self, method: str, rest: list[str], body: Any, mine: set[str]
    ) -> Answer:
        if not rest:
            if method == "GET":
                found = [c for c in self.clients.values() if c["project"] in mine]
                return 200, {"clients": found}
            if method == "POST":
                return self._create_client(body, mine)
            return auth_error(405, "METHOD_NOT_ALLOWED", "not allowed")
        client = self.clients.get(rest[0])
        if client is None or client["project"] not in mine:
            return auth_error(404, "NOT_FOUND", "no such client")
        if len(rest) == 1 and method == "GET":
            return 200, {"client": client}
        if rest[1:] == ["credentials"]:
            return self._credentials(method, client, body)
        if rest[1:] == ["scopes"] and method == "POST":
            return self._create_scope(client, body)
        return auth_error(404, "NOT_FOUND", "unknown endpoint")

    def _create_client(self, body: Any, mine: set[str]) -> Answer:
        fields = body.get("client") if isinstance(body, Mapping) else None
        if not isinstance(fields, Mapping) or not fields.get("name"):
            return auth_error(400, "BAD_REQUEST", "a client needs a name")
        if fields.get("project") not in mine:
            return auth_error(403, "FORBIDDEN", "not an admin of that project")
        public = fields.get("public_client")
        kind = fields.get("client_type") or (
            "public_installed_client"
            if public
            else "hybrid_confidential_client_resource_server"
        )
        record = {
            "fqdns": [],
            "links": {"privacy_policy": None, "terms_and_conditions": None},
            "parent_client": None,
            "preselect_idp": None,
            "prompt_for_named_grant": True,
            "redirect_uris": [],
            "required_idp": None,
            "scopes": [],
            "userinfo_from_effective_identity": True,
            "visibility": "private",
            "grant_types": (
                ["authorization_code", "refresh_token"] if public else _PRIVATE_GRANTS
            ),
            **fields,
            "client_type": kind,
            "public_client": kind == "public_installed_client",
            "id": str(uuid.uuid4()),
        }
        self.clients[record["id"]] = record
        self.credentials[record["id"]] = []
        return 200, {"client": record}

    def _credentials(self, method: str, client: Mapping[str, Any], body: Any) -> Answer:
        held = self.credentials[client["id"]]
        if method == "GET":
            return 200, {"credentials": [{**c, "secret": None} for c in held]}
        if method != "POST":
            return auth_error(405, "METHOD_NOT_ALLOWED", "not allowed")
        fields = body.get("credential") if isinstance(body, Mapping) else None
        if not isinstance(fields, Mapping) or not fields.get("name"):
            return auth_error(400, "BAD_REQUEST", "a credential needs a name")
        credential = {
            "name": fields["name"],
            "id": str(uuid.uuid4()),
            "created": datetime.now(UTC).isoformat(),
            "client": client["id"],
            "secret": secrets.token_urlsafe(32),
        }
        held.append(credential)
        return 200, {"credential": credential}

    def _dependents(self, given: Any) -> list[dict[str, Any]] | None:
        if given is None:
            return []
        if not isinstance(given, list):
            return None
        found = []
        for spec in given:
            if not isinstance(spec, Mapping) or spec.get("scope") not in self.scopes:
                return None
            found.append(
                {
                    "scope": str(spec["scope"]),
                    "optional": bool(spec.get("optional", False)),
                    "requires_refresh_token": bool(
                        spec.get("requires_refresh_token", False)
                    ),
                }
            )
        return found

    def _create_scope(self, client: Mapping[str, Any], body: Any) -> Answer:
        fields = body.get("scope") if isinstance(body, Mapping) else None
        if not isinstance(fields, Mapping):
            return auth_error(400, "BAD_REQUEST", "no scope given")
        suffix = fields.get("scope_suffix")
        if not (isinstance(suffix, str) and suffix and set(suffix) <= _SUFFIX_CHARS):
            return auth_error(400, "BAD_REQUEST", "scope_suffix: a-z, 0-9 and _ only")
        if not fields.get("name") or not fields.get("description"):
            return auth_error(
                400, "BAD_REQUEST", "a scope needs a name and description"
            )
        string = f"https://auth.globus.org/scopes/{client['id']}/{suffix}"
        if any(s["scope_string"] == string for s in self.scopes.values()):
            return auth_error(409, "CONFLICT", "the client has a scope of that suffix")
        dependents = self._dependents(fields.get("dependent_scopes"))
        if dependents is None:
            return auth_error(400, "BAD_REQUEST", "dependent_scopes: unknown scope id")
        record = {
            "scope_string": string,
            "allows_refresh_token": fields.get("allows_refresh_token", True),
            "id": str(uuid.uuid4()),
            "advertised": fields.get("advertised", False),
            "required_domains": fields.get("required_domains", []),
            "name": fields["name"],
            "description": fields["description"],
            "client": client["id"],
            "dependent_scopes": dependents,
        }
        self.scopes[record["id"]] = record
        self.clients[client["id"]]["scopes"].append(record["id"])
        return 200, {"scope": record}

    def _scopes(
        self, method: str, rest: list[str], query: str, body: Any, mine: set[str]
    ) -> Answer:
        visible = {
            i: s
            for i, s in self.scopes.items()
            if s["advertised"] or self.clients[s["client"]]["project"] in mine
        }
        if not rest and method == "GET":
            asked = {k: v[0].split(",") for k, v in parse_qs(query).items()}
            found = list(visible.values())
            if "ids" in asked:
                found = [s for s in found if s["id"] in asked["ids"]]
            if "scope_strings" in asked:
                found = [
                    s for s in found if s["scope_string"] in asked["scope_strings"]
                ]
            return 200, {"scopes": found}
        scope = visible.get(rest[0]) if len(rest) == 1 else None
        if scope is None or scope["client"] is None:
            return auth_error(404, "NOT_FOUND", "no such scope")
        if method == "GET":
            return 200, {"scope": scope}
        if method != "PUT":
            return auth_error(405, "METHOD_NOT_ALLOWED", "not allowed")
        fields = body.get("scope") if isinstance(body, Mapping) else None
        if not isinstance(fields, Mapping):
            return auth_error(400, "BAD_REQUEST", "no scope given")
        if "dependent_scopes" in fields:
            dependents = self._dependents(fields["dependent_scopes"])
            if dependents is None:
                return auth_error(
                    400, "BAD_REQUEST", "dependent_scopes: unknown scope id"
                )
            scope["dependent_scopes"] = dependents
        for name in ("name", "description", "advertised", "allows_refresh_token"):
            if name in fields:
                scope[name] = fields[name]
        return 200, {"scope": scope}
