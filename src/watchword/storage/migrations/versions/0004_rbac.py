"""RBAC: issuers, organizations, projects, groups (members, IdP groups, roles, projects),
roles, resource types, role bindings, service and system accounts, the generation counter;
seeds watchword's own resource types and roles (``watchword.rbac.catalogue`` as it was).

Revision ID: 0004_rbac
Revises: 0003_tokens
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004_rbac"
down_revision = "0003_tokens"
branch_labels = None
depends_on = None


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _fk(column: str, target: str, name: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [target], name=name, ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "rbac_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rbac_generation"),
    )
    op.create_table(
        "rbac_issuers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.Column("subject_claim", sa.String(200), nullable=False),
        sa.Column("groups_claim", sa.String(200), nullable=True),
        sa.Column("authz_claim", sa.String(200), nullable=False),
        sa.Column("membership_from_claims", sa.Boolean(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_rbac_issuers"),
        sa.UniqueConstraint("url", name="uq_rbac_issuers_url"),
    )
    op.create_table(
        "rbac_organizations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_rbac_organizations"),
        sa.UniqueConstraint("name", name="uq_rbac_organizations_name"),
    )
    org_fk = "rbac_organizations.id"
    op.create_table(
        "rbac_projects",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_rbac_projects"),
        _fk(
            "organization_id",
            org_fk,
            "fk_rbac_projects_organization_id_rbac_organizations",
            "RESTRICT",
        ),
        sa.UniqueConstraint("organization_id", "name", name="uq_rbac_projects_org_name"),
    )
    op.create_table(
        "rbac_groups",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("legacy_user_ids", sa.JSON(), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_rbac_groups"),
        _fk(
            "organization_id",
            org_fk,
            "fk_rbac_groups_organization_id_rbac_organizations",
            "RESTRICT",
        ),
        sa.UniqueConstraint("organization_id", "name", name="uq_rbac_groups_org_name"),
    )
    op.create_table(
        "rbac_roles",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_rbac_roles"),
        _fk(
            "organization_id",
            org_fk,
            "fk_rbac_roles_organization_id_rbac_organizations",
            "RESTRICT",
        ),
    )
    op.create_index("ix_rbac_roles_org_name", "rbac_roles", ["organization_id", "name"])
    group_fk = "rbac_groups.id"
    op.create_table(
        "rbac_group_members",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject_id", sa.String(500), nullable=False),
        sa.Column("email", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("group_id", "issuer", "subject_id", name="pk_rbac_group_members"),
        _fk("group_id", group_fk, "fk_rbac_group_members_group_id_rbac_groups", "CASCADE"),
    )
    op.create_index("ix_rbac_group_members_subject", "rbac_group_members", ["subject_id", "issuer"])
    op.create_table(
        "rbac_group_idp_groups",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "issuer", "name", name="pk_rbac_group_idp_groups"),
        _fk("group_id", group_fk, "fk_rbac_group_idp_groups_group_id_rbac_groups", "CASCADE"),
    )
    op.create_index("ix_rbac_group_idp_groups_name", "rbac_group_idp_groups", ["name", "issuer"])
    op.create_table(
        "rbac_group_roles",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("role_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "role_id", name="pk_rbac_group_roles"),
        _fk("group_id", group_fk, "fk_rbac_group_roles_group_id_rbac_groups", "CASCADE"),
        _fk("role_id", "rbac_roles.id", "fk_rbac_group_roles_role_id_rbac_roles", "RESTRICT"),
    )
    op.create_index("ix_rbac_group_roles_role", "rbac_group_roles", ["role_id"])
    op.create_table(
        "rbac_group_projects",
        sa.Column("group_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("group_id", "project_id", name="pk_rbac_group_projects"),
        _fk("group_id", group_fk, "fk_rbac_group_projects_group_id_rbac_groups", "CASCADE"),
        _fk(
            "project_id",
            "rbac_projects.id",
            "fk_rbac_group_projects_project_id_rbac_projects",
            "CASCADE",
        ),
    )
    op.create_index("ix_rbac_group_projects_project", "rbac_group_projects", ["project_id"])
    op.create_table(
        "rbac_resource_types",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("name", name="pk_rbac_resource_types"),
    )
    op.create_table(
        "rbac_role_bindings",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject_id", sa.String(500), nullable=True),
        sa.Column("idp_group", sa.String(500), nullable=True),
        sa.Column("role_ids", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_rbac_role_bindings"),
    )
    op.create_index("ix_rbac_role_bindings_issuer", "rbac_role_bindings", ["issuer"])
    op.create_table(
        "rbac_service_accounts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_rbac_service_accounts"),
        _fk(
            "organization_id",
            org_fk,
            "fk_rbac_service_accounts_organization_id_rbac_organizations",
            "RESTRICT",
        ),
        sa.UniqueConstraint("organization_id", "name", name="uq_rbac_service_accounts_org_name"),
    )
    op.create_table(
        "rbac_system_accounts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject_id", sa.String(500), nullable=False),
        sa.Column("role_ids", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_rbac_system_accounts"),
        sa.UniqueConstraint("issuer", "subject_id", name="uq_rbac_system_accounts_subject"),
    )
    _seed()


# The catalogue as it was at this revision, as literals: a migration must not change when
# watchword.rbac.catalogue does (`watchword role seed` adds later entries).
_CATALOGUE_TYPES: dict[str, list[str]] = {
    "watchword:organizations": ["create", "read", "update", "delete"],
    "watchword:projects": ["create", "read", "update", "delete"],
    "watchword:groups": ["create", "read", "update", "delete"],
    "watchword:roles": ["create", "read", "update", "delete"],
    "watchword:resource-types": ["create", "read", "update", "delete"],
    "watchword:service-accounts": ["create", "read", "update", "delete"],
    "watchword:issuers": ["create", "read", "update", "delete"],
    "watchword:tokens": ["create", "read", "update", "delete"],
    "watchword:acl": ["read"],
    "watchword:role-bindings": ["create", "read", "update", "delete"],
    "watchword:system-accounts": ["create", "read", "update", "delete"],
    "watchword:authz": ["check"],
}

_CATALOGUE_ROLES: list[dict[str, Any]] = [
    {
        "id": "platform-admin",
        "description": "Everything, everywhere (global).",
        "permissions": {"global": [{"resource_type": "*", "actions": ["*"], "effect": "allow"}]},
    },
    {
        "id": "org-admin",
        "description": "Administers one organization: its projects, groups, roles, service "
        "accounts, tokens.",
        "permissions": {
            "organization": [
                {
                    "resource_type": "watchword:organizations",
                    "actions": ["read", "update"],
                    "effect": "allow",
                },
                {
                    "resource_type": "watchword:projects",
                    "actions": ["create", "read", "update", "delete"],
                    "effect": "allow",
                },
                {
                    "resource_type": "watchword:groups",
                    "actions": ["create", "read", "update", "delete"],
                    "effect": "allow",
                },
                {
                    "resource_type": "watchword:roles",
                    "actions": ["create", "read", "update", "delete"],
                    "effect": "allow",
                },
                {
                    "resource_type": "watchword:resource-types",
                    "actions": ["read"],
                    "effect": "allow",
                },
                {
                    "resource_type": "watchword:service-accounts",
                    "actions": ["create", "read", "update", "delete"],
                    "effect": "allow",
                },
                {
                    "resource_type": "watchword:tokens",
                    "actions": ["create", "read", "update", "delete"],
                    "effect": "allow",
                },
                {"resource_type": "watchword:acl", "actions": ["read"], "effect": "allow"},
            ]
        },
    },
    {
        "id": "org-reader",
        "description": "Reads everything in one organization.",
        "permissions": {
            "organization": [
                {
                    "resource_type": "watchword:organizations",
                    "actions": ["read"],
                    "effect": "allow",
                },
                {"resource_type": "watchword:roles", "actions": ["read"], "effect": "allow"},
                {
                    "resource_type": "watchword:resource-types",
                    "actions": ["read"],
                    "effect": "allow",
                },
                {"resource_type": "watchword:acl", "actions": ["read"], "effect": "allow"},
                {"resource_type": "watchword:projects", "actions": ["read"], "effect": "allow"},
                {"resource_type": "watchword:groups", "actions": ["read"], "effect": "allow"},
                {
                    "resource_type": "watchword:service-accounts",
                    "actions": ["read"],
                    "effect": "allow",
                },
            ]
        },
    },
    {
        "id": "authz-client",
        "description": "A service that asks /v1/authz questions about any subject (global).",
        "permissions": {
            "global": [
                {"resource_type": "watchword:authz", "actions": ["check"], "effect": "allow"}
            ]
        },
    },
    {
        "id": "project-member",
        "description": "Reads its organization's catalogue; works in the projects its groups "
        "are linked to.",
        "permissions": {
            "organization": [
                {
                    "resource_type": "watchword:organizations",
                    "actions": ["read"],
                    "effect": "allow",
                },
                {"resource_type": "watchword:roles", "actions": ["read"], "effect": "allow"},
                {
                    "resource_type": "watchword:resource-types",
                    "actions": ["read"],
                    "effect": "allow",
                },
                {"resource_type": "watchword:acl", "actions": ["read"], "effect": "allow"},
            ],
            "project": [
                {"resource_type": "watchword:projects", "actions": ["read"], "effect": "allow"},
                {
                    "resource_type": "watchword:tokens",
                    "actions": ["create", "read", "update", "delete"],
                    "effect": "allow",
                },
            ],
            "owner": [
                {
                    "resource_type": "watchword:tokens",
                    "actions": ["create", "read", "update", "delete"],
                    "effect": "allow",
                }
            ],
        },
    },
]


def _seed() -> None:
    now = datetime.now(UTC)
    stamps = {"version": 1, "created_at": now, "updated_at": now}
    generation = sa.table("rbac_generation", sa.column("id"), sa.column("generation"))
    op.bulk_insert(generation, [{"id": 1, "generation": 1}])
    types = sa.table(
        "rbac_resource_types",
        *(sa.column(c) for c in ("name", "description", "version", "created_at", "updated_at")),
        sa.column("actions", sa.JSON()),
    )
    op.bulk_insert(
        types,
        [
            {"name": n, "actions": list(a), "description": "watchword", **stamps}
            for n, a in _CATALOGUE_TYPES.items()
        ],
    )
    roles = sa.table(
        "rbac_roles",
        *(sa.column(c) for c in ("id", "name", "organization_id", "description", "version")),
        sa.column("created_at"),
        sa.column("updated_at"),
        sa.column("permissions", sa.JSON()),
    )
    op.bulk_insert(
        roles,
        [
            {
                "id": r["id"],
                "name": r["id"],
                "organization_id": None,
                "description": r["description"],
                "permissions": r["permissions"],
                **stamps,
            }
            for r in _CATALOGUE_ROLES
        ],
    )


def downgrade() -> None:
    for table in (
        "rbac_system_accounts",
        "rbac_service_accounts",
        "rbac_role_bindings",
        "rbac_resource_types",
        "rbac_group_projects",
        "rbac_group_roles",
        "rbac_group_idp_groups",
        "rbac_group_members",
        "rbac_roles",
        "rbac_groups",
        "rbac_projects",
        "rbac_organizations",
        "rbac_issuers",
        "rbac_generation",
    ):
        op.drop_table(table)
