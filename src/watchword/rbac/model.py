"""RBAC entities as values (what storage returns and the API serializes).

Every entity carries ``version`` (its ``ETag``), ``created_at`` and ``updated_at`` (aware
UTC). A subject is always the pair (issuer, id); a member's email is display only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from watchword.rbac.claims import service_account_subject

__all__ = [
    "Group",
    "GroupMember",
    "IdpGroup",
    "IssuerRecord",
    "Organization",
    "Project",
    "ResourceTypeRecord",
    "RoleBinding",
    "RoleRecord",
    "ServiceAccount",
    "Stamp",
    "SystemAccount",
]


@dataclass(frozen=True, slots=True)
class Stamp:
    version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class IssuerRecord:
    id: str
    url: str
    audiences: tuple[str, ...]
    subject_claim: str
    groups_claim: str | None
    authz_claim: str
    membership_from_claims: bool
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class Organization:
    id: str
    name: str
    description: str
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    organization_id: str
    name: str
    description: str
    stamp: Stamp


@dataclass(frozen=True, slots=True, order=True)
class GroupMember:
    """A subject in a group, unique on (issuer, id)."""

    issuer: str
    id: str
    email: str | None = None

    @property
    def pair(self) -> tuple[str, str]:
        return (self.issuer, self.id)


@dataclass(frozen=True, slots=True, order=True)
class IdpGroup:
    """An identity-provider group name (byte-exact) from one issuer, mapped to a group."""

    issuer: str
    name: str


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    organization_id: str
    name: str
    description: str
    members: tuple[GroupMember, ...]
    idp_groups: tuple[IdpGroup, ...]
    role_ids: tuple[str, ...]
    project_ids: tuple[str, ...]
    legacy_user_ids: tuple[str, ...] | None
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class RoleRecord:
    """A role: catalogue (``organization_id`` None) or specific to one organization."""

    id: str
    name: str
    organization_id: str | None
    description: str
    permissions: Mapping[str, object]
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class ResourceTypeRecord:
    name: str
    actions: tuple[str, ...]
    description: str
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """A global grant: ``role_ids`` to (issuer, subject), to all of an issuer's subjects
    (``subject_id == "*"``), or to an issuer's IdP group."""

    id: str
    issuer: str
    subject_id: str | None
    idp_group: str | None
    role_ids: tuple[str, ...]
    description: str
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """Belongs to exactly one organization; its subject is (local issuer, ``sa:<id>``)."""

    id: str
    organization_id: str
    name: str
    description: str
    stamp: Stamp

    def subject(self, issuer_url: str) -> tuple[str, str]:
        return service_account_subject(issuer_url, self.id)


@dataclass(frozen=True, slots=True)
class SystemAccount:
    """A machine identity (e.g. an mTLS CN) holding global roles only."""

    id: str
    issuer: str
    subject_id: str
    role_ids: tuple[str, ...]
    description: str
    stamp: Stamp
