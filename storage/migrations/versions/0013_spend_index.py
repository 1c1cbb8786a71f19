"""The purchases' spend index carries refunds and voids: the segment refresh's 12-month net spend
reads only the index again (it subtracts refunds and skips voided purchases since 0007).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "ix_purchases_member_id_purchased_at_amount_minor"
NEW = "ix_purchases_member_spend"


def upgrade() -> None:
    op.create_index(
        NEW,
        "purchases",
        ["member_id", "purchased_at", "amount_minor", "refunded_minor", "voided_at"],
    )
    op.drop_index(OLD, table_name="purchases")


def downgrade() -> None:
    op.create_index(OLD, "purchases", ["member_id", "purchased_at", "amount_minor"])
    op.drop_index(NEW, table_name="purchases")
