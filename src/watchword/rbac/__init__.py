"""Claims-based RBAC: organizations, projects, groups, roles, service and system accounts.

The pure core, importable without a database: claims → identity (:mod:`.claims`), identity +
facts → the authz subject (:mod:`.subject`), compiled subject → ACL document (:mod:`.acl`),
role documents (:mod:`.role`), the seeded catalogue (:mod:`.catalogue`), the legacy import
plan (:mod:`.legacy`). Storage lives in :mod:`.store`, the per-runtime service (policy and
ACL cache) in :mod:`.service`, HTTP routers in :mod:`.routes`. See ``docs/rbac.md``.
"""

from watchword.rbac.acl import AclDocument, Endpoint, OrganizationAcl, acl_document
from watchword.rbac.claims import (
    Identity,
    IssuerTrust,
    claims_digest,
    identity_from_claims,
    service_account_subject,
)
from watchword.rbac.errors import (
    DuplicateMember,
    InUse,
    LegacyExportInvalid,
    MalformedClaim,
    ServiceAccountForeignOrg,
    SubjectRequired,
    UnknownOrganization,
    UnknownProject,
    UnknownRoleReference,
    WrongOrganizationCount,
)
from watchword.rbac.subject import GroupFacts, Resolution, SubjectFacts, resolve_subject

__all__ = [
    "AclDocument",
    "DuplicateMember",
    "Endpoint",
    "GroupFacts",
    "Identity",
    "InUse",
    "IssuerTrust",
    "LegacyExportInvalid",
    "MalformedClaim",
    "OrganizationAcl",
    "Resolution",
    "ServiceAccountForeignOrg",
    "SubjectFacts",
    "SubjectRequired",
    "UnknownOrganization",
    "UnknownProject",
    "UnknownRoleReference",
    "WrongOrganizationCount",
    "acl_document",
    "claims_digest",
    "identity_from_claims",
    "resolve_subject",
    "service_account_subject",
]
