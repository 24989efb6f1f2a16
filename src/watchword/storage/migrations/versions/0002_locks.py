"""Locks: the lease table of the PostgreSQL and SQLite lock backends, and the epoch
counter of PostgreSQL's fast grants.

Revision ID: 0002_locks
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_locks"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lock_leases",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("holder", sa.String(120), nullable=True),
        sa.Column("fence", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("broken", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_lock_leases"),
    )
    op.create_table(
        "lock_epochs",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_lock_epochs"),
    )


def downgrade() -> None:
    op.drop_table("lock_epochs")
    op.drop_table("lock_leases")
