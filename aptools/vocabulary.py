"""The interface's and Globus Auth's words, each defined once.

Statuses, roles and principal forms come from the Action Provider Interface
(see the published ``actions_spec.openapi.yaml``); the URN prefixes and the
groups scope from Globus Auth. Every other module, the OpenAPI document and
the command line read them from here.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "ACTIVE",
    "ALL_AUTHENTICATED",
    "FAILED",
    "GROUPS_SCOPE",
    "GROUP_URN",
    "IDENTITY_URN",
    "INACTIVE",
    "PRINCIPAL_PATTERN",
    "PUBLIC",
    "ROLES",
    "STATUSES",
    "STATUS_ORDER",
    "SUCCEEDED",
    "TERMINAL",
    "UUID_PATTERN",
    "StatusName",
]

#: An action's status (the interface's ``status``).
StatusName = Literal["ACTIVE", "INACTIVE", "SUCCEEDED", "FAILED"]
ACTIVE: Final = "ACTIVE"
INACTIVE: Final = "INACTIVE"
SUCCEEDED: Final = "SUCCEEDED"
FAILED: Final = "FAILED"
#: Every status, in the interface's order.
STATUS_ORDER: Final = (ACTIVE, INACTIVE, SUCCEEDED, FAILED)
STATUSES: Final = frozenset(STATUS_ORDER)
#: Statuses an action never leaves.
TERMINAL: Final = frozenset({SUCCEEDED, FAILED})

#: The roles an action names principals in (enumerate's ``roles`` filter).
ROLES: Final = ("creator_id", "monitor_by", "manage_by")

#: Principal URN prefixes (Globus Auth identities and Globus Groups).
IDENTITY_URN: Final = "urn:globus:auth:identity:"
GROUP_URN: Final = "urn:globus:groups:id:"
UUID_PATTERN: Final = (
    "[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}"
)
PRINCIPAL_PATTERN: Final = f"^urn:globus:(auth:identity|groups:id):{UUID_PATTERN}$"
#: The special principals of ``visible_to`` and ``runnable_by``.
PUBLIC: Final = "public"
ALL_AUTHENTICATED: Final = "all_authenticated_users"

#: The Globus Groups scope the provider asks a dependent token for.
GROUPS_SCOPE: Final = (
    "urn:globus:auth:scope:groups.api.globus.org:view_my_groups_and_memberships"
)
