"""The shop's churn signal chosen from its own backtest, and who is at risk by it since when.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "churn_signal",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("signal", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("auc_p_alive", sa.Float(), nullable=True),
        sa.Column("auc_expected_purchases", sa.Float(), nullable=True),
        sa.Column("auc_gap_rule", sa.Float(), nullable=True),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("returners", sa.Integer(), nullable=False),
        sa.Column("cutoff", sa.Date(), nullable=False),
        sa.Column("holdout_until", sa.Date(), nullable=False),
        sa.Column("chosen_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("flags_signal", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_churn_signal")),
    )
    with op.batch_alter_table("member_value") as batch:
        batch.add_column(
            sa.Column("at_risk", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(
            sa.Column("at_risk_since", storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch.create_index(batch.f("ix_member_value_at_risk_since"), ["at_risk_since"])
    # Until the next refresh, at risk is what the churn-risk audience meant so far: fewer than
    # ln 2 expected purchases in the next 90 days (never stamped: no news).
    op.execute(
        sa.text("UPDATE member_value SET at_risk = :yes WHERE purchases_90d < :cut").bindparams(
            yes=True, cut=math.log(2)
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("member_value") as batch:
        batch.drop_index(batch.f("ix_member_value_at_risk_since"))
        batch.drop_column("at_risk_since")
        batch.drop_column("at_risk")
    op.drop_table("churn_signal")
