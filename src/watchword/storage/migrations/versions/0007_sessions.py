"""Sign-in: sessions (upstream tokens sealed), started sign-ins, seen logout tokens.

Revision ID: 0007_sessions
Revises: 0006_rotation_anchor_current
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007_sessions"
down_revision = "0006_rotation_anchor_current"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("upstream_sid", sa.String(255), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("display_name", sa.String(200), nullable=True),
        sa.Column("claims", sa.Text(), nullable=False),
        sa.Column("organization_ids", sa.Text(), server_default="|", nullable=False),
        sa.Column("access_token", sa.LargeBinary(), nullable=True),
        sa.Column("refresh_token", sa.LargeBinary(), nullable=True),
        sa.Column("id_token", sa.LargeBinary(), nullable=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_subject", "sessions", ["issuer", "subject"])
    op.create_index("ix_sessions_upstream_sid", "sessions", ["issuer", "upstream_sid"])
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_index("ix_sessions_key_id", "sessions", ["key_id"])
    op.create_table(
        "signin_flows",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("binding_hash", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("return_to", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_hash", name="pk_signin_flows"),
    )
    op.create_index("ix_signin_flows_expires_at", "signin_flows", ["expires_at"])
    op.create_table(
        "logout_tokens_seen",
        sa.Column("jti_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("jti_hash", name="pk_logout_tokens_seen"),
    )
    op.create_index("ix_logout_tokens_seen_expires_at", "logout_tokens_seen", ["expires_at"])
    _seed_sessions_type()


# The catalogue entries of this revision, as literals (a migration must not change when
# watchword.rbac.catalogue does): the resource type, and org-admin reading and ending its
# organization's sessions when that role is still the seeded one (an edited role is left
# alone: `watchword role seed` never overwrites either).
_TYPE = "watchword:sessions"
_ACTIONS = ["read", "delete"]
_ORG_ADMIN_GRANT = {"resource_type": _TYPE, "actions": _ACTIONS, "effect": "allow"}


def _seed_sessions_type() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)
    types = sa.table(
        "rbac_resource_types",
        *(sa.column(c) for c in ("name", "description", "version", "created_at", "updated_at")),
        sa.column("actions", sa.JSON()),
    )
    exists = conn.execute(sa.select(types.c.name).where(types.c.name == _TYPE)).first()
    if exists is None:
        conn.execute(
            types.insert().values(
                name=_TYPE,
                actions=_ACTIONS,
                description="watchword",
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
    roles = sa.table(
        "rbac_roles",
        sa.column("id"),
        sa.column("version"),
        sa.column("updated_at"),
        sa.column("permissions", sa.JSON()),
    )
    row = conn.execute(
        sa.select(roles.c.permissions, roles.c.version).where(roles.c.id == "org-admin")
    ).first()
    if row is not None and row.version == 1:
        permissions = dict(row.permissions or {})
        grants = list(permissions.get("organization") or [])
        if not any(g.get("resource_type") == _TYPE for g in grants):
            permissions["organization"] = [*grants, _ORG_ADMIN_GRANT]
            conn.execute(
                roles.update()
                .where(roles.c.id == "org-admin")
                .values(permissions=permissions, updated_at=now)
            )
    generation = sa.table("rbac_generation", sa.column("id"), sa.column("generation"))
    conn.execute(generation.update().values(generation=generation.c.generation + 1))


def downgrade() -> None:
    # The watchword:sessions resource type and org-admin's grant stay: roles may name it.
    op.drop_index("ix_logout_tokens_seen_expires_at", table_name="logout_tokens_seen")
    op.drop_table("logout_tokens_seen")
    op.drop_index("ix_signin_flows_expires_at", table_name="signin_flows")
    op.drop_table("signin_flows")
    op.drop_index("ix_sessions_key_id", table_name="sessions")
    op.drop_index("ix_sessions_expires_at", table_name="sessions")
    op.drop_index("ix_sessions_upstream_sid", table_name="sessions")
    op.drop_index("ix_sessions_subject", table_name="sessions")
    op.drop_table("sessions")
