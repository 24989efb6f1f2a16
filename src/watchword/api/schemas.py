"""Wire schemas of the RBAC administration API (apart from tables and entity values)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from watchword.api.text import Line, PrintableModel
from watchword.rbac.model import (
    Group,
    IssuerRecord,
    Organization,
    Project,
    ResourceTypeRecord,
    RoleBinding,
    RoleRecord,
    ServiceAccount,
    Stamp,
    SystemAccount,
)
from watchword.rbac.store.record import Page

# Limits (docs/operations.md): with the request body limit, they keep every record, and so
# every list page, small.
MAX_TEXT = 2000  # a description
MAX_REF = 500  # an id, a subject, an issuer URL, a claim name
MAX_ITEMS = 100  # roles, actions, audiences, IdP groups, permissions of a level
MAX_MEMBERS = 1000  # a group's members and projects

Description = Annotated[str, Field(max_length=MAX_TEXT)]
Ref = Annotated[Line, Field(min_length=1, max_length=MAX_REF)]
Name = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")
OptionalName = Field(default=None, min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")
T = TypeVar("T")
R = TypeVar("R")


class _In(PrintableModel):
    model_config = ConfigDict(extra="forbid")


class Versioned(BaseModel):
    version: int
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def stamp(stamp: Stamp) -> dict[str, object]:
        return {
            "version": stamp.version,
            "created_at": stamp.created_at,
            "updated_at": stamp.updated_at,
        }


PageLimit = Annotated[int, Query(ge=1, le=500, description="Page size.")]


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


def page_out(page: Page[R], out: Callable[[R], T]) -> PageOut[T]:
    """A store page in its wire form."""
    return PageOut(items=[out(r) for r in page.items], next_cursor=page.next_cursor)


# Organizations and projects ----------------------------------------------------------------


class OrganizationIn(_In):
    name: Line = Name
    description: Description = ""


class OrganizationPatch(_In):
    name: Line | None = OptionalName
    description: Description | None = None


class OrganizationOut(Versioned):
    id: str
    name: str
    description: str

    @classmethod
    def of(cls, o: Organization) -> OrganizationOut:
        return cls(id=o.id, name=o.name, description=o.description, **cls.stamp(o.stamp))


class ProjectIn(_In):
    name: Line = Name
    description: Description = ""


ProjectPatch = OrganizationPatch


class ProjectOut(Versioned):
    id: str
    organization_id: str
    name: str
    description: str

    @classmethod
    def of(cls, p: Project) -> ProjectOut:
        return cls(
            id=p.id,
            organization_id=p.organization_id,
            name=p.name,
            description=p.description,
            **cls.stamp(p.stamp),
        )


# Groups ------------------------------------------------------------------------------------


class MemberIn(_In):
    id: Ref = Field(min_length=1, max_length=500, description="The subject id (`sub`).")
    issuer: Ref | None = Field(
        default=None,
        max_length=500,
        description="The subject's issuer, exact; omitted: watchword's own (from configuration).",
    )
    email: Ref | None = Field(default=None, max_length=500, description="Display only.")


class MemberOut(BaseModel):
    id: str
    issuer: str
    email: str | None


class IdpGroupIn(_In):
    issuer: Ref = Field(min_length=1, max_length=500)
    name: Ref = Field(min_length=1, max_length=500)


class GroupIn(_In):
    name: Line = Name
    description: Description = ""
    members: list[MemberIn] = Field(default_factory=list, max_length=MAX_MEMBERS)
    idp_groups: list[IdpGroupIn] = Field(default_factory=list, max_length=MAX_ITEMS)
    role_ids: list[Ref] = Field(default_factory=list, max_length=MAX_ITEMS)
    project_ids: list[Ref] = Field(default_factory=list, max_length=MAX_MEMBERS)


class GroupPatch(_In):
    name: Line | None = OptionalName
    description: Description | None = None
    members: list[MemberIn] | None = Field(default=None, max_length=MAX_MEMBERS)
    idp_groups: list[IdpGroupIn] | None = Field(default=None, max_length=MAX_ITEMS)
    role_ids: list[Ref] | None = Field(default=None, max_length=MAX_ITEMS)
    project_ids: list[Ref] | None = Field(default=None, max_length=MAX_MEMBERS)


class GroupOut(Versioned):
    id: str
    organization_id: str
    name: str
    description: str
    members: list[MemberOut]
    idp_groups: list[IdpGroupIn]
    role_ids: list[str]
    project_ids: list[str]
    legacy_user_ids: list[str] | None

    @classmethod
    def of(cls, g: Group) -> GroupOut:
        return cls(
            id=g.id,
            organization_id=g.organization_id,
            name=g.name,
            description=g.description,
            members=[MemberOut(id=m.id, issuer=m.issuer, email=m.email) for m in g.members],
            idp_groups=[IdpGroupIn(issuer=i.issuer, name=i.name) for i in g.idp_groups],
            role_ids=list(g.role_ids),
            project_ids=list(g.project_ids),
            legacy_user_ids=None if g.legacy_user_ids is None else list(g.legacy_user_ids),
            **cls.stamp(g.stamp),
        )


# Roles and resource types ------------------------------------------------------------------


class PermissionIn(_In):
    resource_type: Ref = Field(min_length=1, description="A registered type, or `*`.")
    actions: list[Ref] = Field(
        max_length=MAX_ITEMS, min_length=1, description="Actions of that type, or `*`."
    )
    effect: Literal["allow", "deny"] = "allow"


Level = Literal["global", "organization", "project", "owner"]


class RoleIn(_In):
    name: Line = Name
    organization_id: Ref | None = Field(
        default=None, description="Null: a catalogue role; set: a role of that organization."
    )
    description: Description = ""
    permissions: dict[Level, Annotated[list[PermissionIn], Field(max_length=MAX_ITEMS)]] = Field(
        default_factory=dict
    )


class RolePatch(_In):
    name: Line | None = OptionalName
    description: Description | None = None
    permissions: dict[Level, Annotated[list[PermissionIn], Field(max_length=MAX_ITEMS)]] | None = (
        None
    )


class RoleOut(Versioned):
    id: str
    name: str
    organization_id: str | None
    description: str
    permissions: dict[str, object]

    @classmethod
    def of(cls, r: RoleRecord) -> RoleOut:
        return cls(
            id=r.id,
            name=r.name,
            organization_id=r.organization_id,
            description=r.description,
            permissions=dict(r.permissions),
            **cls.stamp(r.stamp),
        )


class ResourceTypeIn(_In):
    name: Line = Name
    actions: list[Ref] = Field(max_length=MAX_ITEMS, min_length=1)
    description: Description = ""


class ResourceTypePatch(_In):
    actions: list[Ref] | None = Field(max_length=MAX_ITEMS, default=None, min_length=1)
    description: Description | None = None


class ResourceTypeOut(Versioned):
    name: str
    actions: list[str]
    description: str

    @classmethod
    def of(cls, t: ResourceTypeRecord) -> ResourceTypeOut:
        return cls(
            name=t.name,
            actions=list(t.actions),
            description=t.description,
            **cls.stamp(t.stamp),
        )


# Accounts, bindings, issuers ---------------------------------------------------------------


class ServiceAccountIn(_In):
    name: Line = Name
    description: Description = ""


class ServiceAccountPatch(_In):
    name: Line | None = OptionalName
    description: Description | None = None
    organization_id: Ref | None = Field(
        default=None, description="Fixed at creation; any other value is refused."
    )


class ServiceAccountOut(Versioned):
    id: str
    organization_id: str
    name: str
    description: str
    subject: MemberOut

    @classmethod
    def of(cls, s: ServiceAccount, issuer_url: str) -> ServiceAccountOut:
        issuer, subject = s.subject(issuer_url)
        return cls(
            id=s.id,
            organization_id=s.organization_id,
            name=s.name,
            description=s.description,
            subject=MemberOut(id=subject, issuer=issuer, email=None),
            **cls.stamp(s.stamp),
        )


class SystemAccountIn(_In):
    subject_id: Ref = Field(min_length=1, max_length=500, description="e.g. the mTLS CN.")
    issuer: Ref | None = Field(default=None, description="Omitted: watchword's own issuer.")
    role_ids: list[Ref] = Field(
        max_length=MAX_ITEMS, min_length=1, description="Catalogue roles (global grants)."
    )
    description: Description = ""


class SystemAccountPatch(_In):
    role_ids: list[Ref] | None = Field(default=None, max_length=MAX_ITEMS)
    description: Description | None = None


class SystemAccountOut(Versioned):
    id: str
    issuer: str
    subject_id: str
    role_ids: list[str]
    description: str

    @classmethod
    def of(cls, s: SystemAccount) -> SystemAccountOut:
        return cls(
            id=s.id,
            issuer=s.issuer,
            subject_id=s.subject_id,
            role_ids=list(s.role_ids),
            description=s.description,
            **cls.stamp(s.stamp),
        )


class BindingIn(_In):
    issuer: Ref = Field(min_length=1, max_length=500)
    subject_id: Ref | None = Field(default=None, description="A subject, or `*` for all.")
    idp_group: Ref | None = Field(default=None, description="Or an IdP group of the issuer.")
    role_ids: list[Ref] = Field(max_length=MAX_ITEMS, min_length=1)
    description: Description = ""


BindingPatch = SystemAccountPatch


class BindingOut(Versioned):
    id: str
    issuer: str
    subject_id: str | None
    idp_group: str | None
    role_ids: list[str]
    description: str

    @classmethod
    def of(cls, b: RoleBinding) -> BindingOut:
        return cls(
            id=b.id,
            issuer=b.issuer,
            subject_id=b.subject_id,
            idp_group=b.idp_group,
            role_ids=list(b.role_ids),
            description=b.description,
            **cls.stamp(b.stamp),
        )


class IssuerIn(_In):
    url: Ref = Field(min_length=1, max_length=500, description="The exact `iss` value.")
    audiences: list[Ref] = Field(default_factory=list, max_length=MAX_ITEMS)
    subject_claim: Ref = "sub"
    groups_claim: Ref | None = None
    authz_claim: Ref | None = Field(default=None, description="Omitted: settings.rbac.authz_claim.")
    membership_from_claims: bool = Field(
        default=False, description="Honour `orgIds` of the authz claim from this issuer."
    )


class IssuerPatch(_In):
    audiences: list[Ref] | None = Field(default=None, max_length=MAX_ITEMS)
    subject_claim: Ref | None = None
    groups_claim: Ref | None = None
    authz_claim: Ref | None = None
    membership_from_claims: bool | None = None


class IssuerOut(Versioned):
    id: str
    url: str
    audiences: list[str]
    subject_claim: str
    groups_claim: str | None
    authz_claim: str
    membership_from_claims: bool

    @classmethod
    def of(cls, i: IssuerRecord) -> IssuerOut:
        return cls(
            id=i.id,
            url=i.url,
            audiences=list(i.audiences),
            subject_claim=i.subject_claim,
            groups_claim=i.groups_claim,
            authz_claim=i.authz_claim,
            membership_from_claims=i.membership_from_claims,
            **cls.stamp(i.stamp),
        )


# ACL ---------------------------------------------------------------------------------------


class AclQuery(_In):
    issuer: Ref = Field(min_length=1, description="The subject's issuer, exact.")
    subject: Ref = Field(min_length=1)
    claims: dict[str, object] = Field(default={}, description="Verified claims, if any.")
    organization_id: Ref | None = None
    scope: list[Ref] | None = Field(
        max_length=MAX_ITEMS, default=None, description="Token scope names, if narrowed."
    )


class EndpointOut(BaseModel):
    name: str = Field(description="A resource type, e.g. compute:clusters.")
    operations: list[str]


class ProjectAclOut(BaseModel):
    id: str
    endpoints: list[EndpointOut]


class OrganizationAclOut(BaseModel):
    id: str
    endpoints: list[EndpointOut] = Field(description="Decided at organization level.")
    owner: list[EndpointOut] = Field(description="On objects the subject owns there.")
    projects: list[ProjectAclOut]


class AclSubjectOut(BaseModel):
    id: str
    issuer: str
    type: Literal["user", "service", "system"]


class AclGroupOut(BaseModel):
    id: str
    organizationId: str  # the wire name, as in uni-identity


class AclOut(BaseModel):
    """The ACL document (a superset of uni-identity's); effective allows only."""

    model_config = ConfigDict(populate_by_name=True)

    subject: AclSubjectOut
    global_: list[EndpointOut] = Field(alias="global")
    organizations: list[OrganizationAclOut]
    organization: OrganizationAclOut | None = Field(description="The scoped organization.")
    projects: list[ProjectAclOut] = Field(description="The scoped organization's projects.")
    groups: list[AclGroupOut]
    scope: dict[str, object] | None
