"""Erasure references: the outbox names the member a message to someone else quotes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column(
                "about_member_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
        batch.create_foreign_key(
            op.f("fk_outbox_about_member_id_members"),
            "members",
            ["about_member_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_outbox_about_member_id", ["about_member_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_about_member_id")
        batch.drop_constraint(op.f("fk_outbox_about_member_id_members"), type_="foreignkey")
        batch.drop_column("about_member_id")
