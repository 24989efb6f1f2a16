"""The seeded catalogue: watchword's own resource types and roles (``docs/rbac.md``).

Pure data. Installed by migration ``0004_rbac`` and again, idempotently, by
``watchword role seed`` (which adds what is missing and leaves edited entries alone).
Every administrative endpoint is checked against these types, so watchword's own
permissions are ordinary roles in watchword.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["CATALOGUE_ROLES", "CATALOGUE_TYPES", "CRUD", "SeedRole", "TYPE_PREFIX", "type_name"]

TYPE_PREFIX = "watchword:"
CRUD: tuple[str, ...] = ("create", "read", "update", "delete")

# Rules: the resource types of watchword's own administration API and their actions.
CATALOGUE_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "watchword:organizations": CRUD,
        "watchword:projects": CRUD,
        "watchword:groups": CRUD,
        "watchword:roles": CRUD,
        "watchword:resource-types": CRUD,
        "watchword:service-accounts": CRUD,
        "watchword:issuers": CRUD,
        "watchword:tokens": CRUD,
        "watchword:acl": ("read",),
        "watchword:role-bindings": CRUD,
        "watchword:system-accounts": CRUD,
        "watchword:authz": ("check",),
        "watchword:sessions": ("read", "delete"),
    }
)


def type_name(kind: str) -> str:
    """``organizations`` → ``watchword:organizations``."""
    return TYPE_PREFIX + kind


@dataclass(frozen=True, slots=True)
class SeedRole:
    id: str
    description: str
    permissions: Mapping[str, object]


def _allow(type_: str, *actions: str) -> dict[str, object]:
    return {"resource_type": type_, "actions": list(actions), "effect": "allow"}


_ORG_READ = [
    _allow("watchword:organizations", "read"),
    _allow("watchword:roles", "read"),
    _allow("watchword:resource-types", "read"),
    _allow("watchword:acl", "read"),
]

CATALOGUE_ROLES: tuple[SeedRole, ...] = (
    SeedRole(
        "platform-admin",
        "Everything, everywhere (global).",
        {"global": [_allow("*", "*")]},
    ),
    SeedRole(
        "org-admin",
        "Administers one organization: its projects, groups, roles, service accounts, tokens.",
        {
            "organization": [
                _allow("watchword:organizations", "read", "update"),
                _allow("watchword:projects", *CRUD),
                _allow("watchword:groups", *CRUD),
                _allow("watchword:roles", *CRUD),
                _allow("watchword:resource-types", "read"),
                _allow("watchword:service-accounts", *CRUD),
                _allow("watchword:tokens", *CRUD),
                _allow("watchword:acl", "read"),
                _allow("watchword:sessions", "read", "delete"),
            ]
        },
    ),
    SeedRole(
        "org-reader",
        "Reads everything in one organization.",
        {
            "organization": [
                *_ORG_READ,
                _allow("watchword:projects", "read"),
                _allow("watchword:groups", "read"),
                _allow("watchword:service-accounts", "read"),
            ]
        },
    ),
    SeedRole(
        "authz-client",
        "A service that asks /v1/authz questions about any subject (global).",
        {"global": [_allow("watchword:authz", "check")]},
    ),
    SeedRole(
        "project-member",
        "Reads its organization's catalogue; works in the projects its groups are linked to.",
        {
            "organization": list(_ORG_READ),
            "project": [
                _allow("watchword:projects", "read"),
                _allow("watchword:tokens", *CRUD),
            ],
            "owner": [_allow("watchword:tokens", *CRUD)],
        },
    ),
)
