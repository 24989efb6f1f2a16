"""RBAC tables (migration ``0004_rbac``).

Every entity row carries ``version`` (optimistic concurrency, the HTTP ``ETag``),
``created_at`` and ``updated_at``. A group's members, mapped IdP groups, roles and linked
projects are child rows of the group (their changes bump the group's version), indexed so
that the groups holding one subject are found without a scan.

``rbac_generation`` is one row whose counter is bumped in the same transaction as every
write to these tables; caches of policies and ACLs compare against it.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from watchword.storage.tables import metadata

__all__ = [
    "generation",
    "group_idp_groups",
    "group_members",
    "group_projects",
    "group_roles",
    "groups",
    "issuers",
    "organizations",
    "projects",
    "resource_types",
    "role_bindings",
    "roles",
    "service_accounts",
    "system_accounts",
]

ID = 64
NAME = 200
URL = 500


def _stamps() -> list[Column[object]]:
    return [
        Column("version", Integer, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    ]


generation = Table(
    "rbac_generation",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", BigInteger, nullable=False),
)

issuers = Table(
    "rbac_issuers",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("url", String(URL), nullable=False, unique=True),
    Column("audiences", JSON, nullable=False),
    Column("subject_claim", String(NAME), nullable=False),
    Column("groups_claim", String(NAME), nullable=True),
    Column("authz_claim", String(NAME), nullable=False),
    Column("membership_from_claims", Boolean, nullable=False),
    *_stamps(),
)

organizations = Table(
    "rbac_organizations",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    *_stamps(),
)

projects = Table(
    "rbac_projects",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column(
        "organization_id",
        String(ID),
        ForeignKey("rbac_organizations.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("name", String(NAME), nullable=False),
    Column("description", Text, nullable=False),
    *_stamps(),
    UniqueConstraint("organization_id", "name", name="uq_rbac_projects_org_name"),
)

groups = Table(
    "rbac_groups",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column(
        "organization_id",
        String(ID),
        ForeignKey("rbac_organizations.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("name", String(NAME), nullable=False),
    Column("description", Text, nullable=False),
    # Legacy user-record references (import from a user-database model); never rewritten.
    Column("legacy_user_ids", JSON, nullable=True),
    *_stamps(),
    UniqueConstraint("organization_id", "name", name="uq_rbac_groups_org_name"),
)


def _group_fk() -> ForeignKey:
    return ForeignKey("rbac_groups.id", ondelete="CASCADE")


group_members = Table(
    "rbac_group_members",
    metadata,
    Column("group_id", String(ID), _group_fk(), primary_key=True),
    Column("issuer", String(URL), primary_key=True),
    Column("subject_id", String(URL), primary_key=True),
    Column("email", String(URL), nullable=True),
    Index("ix_rbac_group_members_subject", "subject_id", "issuer"),
)

group_idp_groups = Table(
    "rbac_group_idp_groups",
    metadata,
    Column("group_id", String(ID), _group_fk(), primary_key=True),
    Column("issuer", String(URL), primary_key=True),
    Column("name", String(URL), primary_key=True),
    Index("ix_rbac_group_idp_groups_name", "name", "issuer"),
)

group_roles = Table(
    "rbac_group_roles",
    metadata,
    Column("group_id", String(ID), _group_fk(), primary_key=True),
    Column(
        "role_id",
        String(ID),
        ForeignKey("rbac_roles.id", ondelete="RESTRICT"),
        primary_key=True,
    ),
    Index("ix_rbac_group_roles_role", "role_id"),
)

group_projects = Table(
    "rbac_group_projects",
    metadata,
    Column("group_id", String(ID), _group_fk(), primary_key=True),
    Column(
        "project_id",
        String(ID),
        ForeignKey("rbac_projects.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Index("ix_rbac_group_projects_project", "project_id"),
)

roles = Table(
    "rbac_roles",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(NAME), nullable=False),
    Column(
        "organization_id",
        String(ID),
        ForeignKey("rbac_organizations.id", ondelete="RESTRICT"),
        nullable=True,
    ),
    Column("description", Text, nullable=False),
    Column("permissions", JSON, nullable=False),
    *_stamps(),
    Index("ix_rbac_roles_org_name", "organization_id", "name"),
)

resource_types = Table(
    "rbac_resource_types",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("actions", JSON, nullable=False),
    Column("description", Text, nullable=False),
    *_stamps(),
)

role_bindings = Table(
    "rbac_role_bindings",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("issuer", String(URL), nullable=False),
    Column("subject_id", String(URL), nullable=True),  # "*": everyone from the issuer
    Column("idp_group", String(URL), nullable=True),
    Column("role_ids", JSON, nullable=False),
    Column("description", Text, nullable=False),
    *_stamps(),
    Index("ix_rbac_role_bindings_issuer", "issuer"),
)

service_accounts = Table(
    "rbac_service_accounts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column(
        "organization_id",
        String(ID),
        ForeignKey("rbac_organizations.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    Column("name", String(NAME), nullable=False),
    Column("description", Text, nullable=False),
    *_stamps(),
    UniqueConstraint("organization_id", "name", name="uq_rbac_service_accounts_org_name"),
)

system_accounts = Table(
    "rbac_system_accounts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("issuer", String(URL), nullable=False),
    Column("subject_id", String(URL), nullable=False),
    Column("role_ids", JSON, nullable=False),
    Column("description", Text, nullable=False),
    *_stamps(),
    UniqueConstraint("issuer", "subject_id", name="uq_rbac_system_accounts_subject"),
)
