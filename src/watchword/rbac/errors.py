"""RBAC's errors, re-exported for this import path; they are defined (and drawn, with the
placement rule) in :mod:`watchword.errors`.
"""

from __future__ import annotations

from watchword.errors import (
    DuplicateMember,
    InUse,
    LegacyExportInvalid,
    MalformedClaim,
    ServiceAccountForeignOrg,
    SubjectRequired,
    UnknownOrganization,
    UnknownProject,
    UnknownRole,
    WrongOrganizationCount,
)

__all__ = [
    "DuplicateMember",
    "InUse",
    "LegacyExportInvalid",
    "MalformedClaim",
    "ServiceAccountForeignOrg",
    "SubjectRequired",
    "UnknownOrganization",
    "UnknownProject",
    "UnknownRoleReference",
    "WrongOrganizationCount",
]

# The name RBAC exported before it raised the authz class: a role reference that does not
# resolve is the same error (same code, status and title) wherever the role is named.
UnknownRoleReference = UnknownRole
