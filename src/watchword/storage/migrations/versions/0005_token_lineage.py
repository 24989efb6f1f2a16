"""Token lineage: ``api_tokens.parent_id``, the token that created this one (over
``POST /v1/tokens`` with a token credential), so revoking a token revokes what it made.

Revision ID: 0005_token_lineage
Revises: 0004_rbac
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_token_lineage"
down_revision = "0004_rbac"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(40), nullable=True))
        batch.create_index("ix_api_tokens_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index("ix_api_tokens_parent_id")
        batch.drop_column("parent_id")
