"""The customer-value model's predictions per member (member_value).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_value",
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("p_alive", sa.Float(), nullable=False),
        sa.Column("purchases_30d", sa.Float(), nullable=False),
        sa.Column("purchases_90d", sa.Float(), nullable=False),
        sa.Column("spend_per_purchase_minor", sa.BigInteger(), nullable=False),
        sa.Column("value_12m_minor", sa.BigInteger(), nullable=False),
        sa.Column("refreshed_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_member_value_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_value")),
    )
    op.create_index(op.f("ix_member_value_p_alive"), "member_value", ["p_alive"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_member_value_p_alive"), table_name="member_value")
    op.drop_table("member_value")
