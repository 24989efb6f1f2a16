"""RBAC's own error classes, each a subclass of the closest class in :mod:`watchword.errors`.

::

    InvalidInput
    ├── UnknownOrganization            unknown_organization
    ├── UnknownProject                 unknown_project
    ├── UnknownRole                    unknown_role   (watchword.authz's; UnknownRoleReference)
    ├── MalformedClaim                 malformed_claim
    ├── WrongOrganizationCount         wrong_organization_count
    ├── ServiceAccountForeignOrg       service_account_foreign_organization
    ├── SubjectRequired                subject_required
    └── LegacyExportInvalid            legacy_export_invalid
    Conflict
    ├── AlreadyExists
    │   └── DuplicateMember            duplicate_member
    └── InUse                          in_use
"""

from __future__ import annotations

from watchword.authz.model import UnknownRole
from watchword.errors import AlreadyExists, Conflict, InvalidInput

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


class UnknownOrganization(InvalidInput):
    code = "unknown_organization"
    title = "Unknown organization"


class UnknownProject(InvalidInput):
    code = "unknown_project"
    title = "Unknown project"


class MalformedClaim(InvalidInput):
    """The namespaced authz claim (or another claim watchword reads) has the wrong shape."""

    code = "malformed_claim"
    title = "Malformed claim"


class WrongOrganizationCount(InvalidInput):
    """A service account must belong to exactly one organization."""

    code = "wrong_organization_count"
    title = "A service account belongs to exactly one organization"


class ServiceAccountForeignOrg(InvalidInput):
    """A service account was put in (or moved to) an organization that is not its own."""

    code = "service_account_foreign_organization"
    title = "A service account cannot join another organization"


class SubjectRequired(InvalidInput):
    """The caller's credential names no (issuer, subject): there is no ACL to compute."""

    code = "subject_required"
    title = "The credential carries no subject"


class LegacyExportInvalid(InvalidInput):
    code = "legacy_export_invalid"
    title = "Invalid legacy export"


# The name RBAC exported before it raised the authz class: a role reference that does not
# resolve is the same error (same code, status and title) wherever the role is named.
UnknownRoleReference = UnknownRole


class DuplicateMember(AlreadyExists):
    code = "duplicate_member"
    title = "The subject is already a member of the group"


class InUse(Conflict):
    """A role or resource type is still referenced and cannot be deleted or narrowed."""

    code = "in_use"
    title = "Still in use"
