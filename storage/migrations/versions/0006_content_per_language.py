"""Content per language: a zh and an en text per campaign and name per offer; consent leaves
the lifecycle stages.

Data: each campaign's text moves to the column of the language it was written in (the
campaign's ``locale``); each staff-made offer's title becomes its member-facing name in the
language its characters are written in (built-in rule offers keep English working titles,
which members never read). Members in the retired stage "unsubscribed" become "prospect"
(never bought) or "active" (bought); the hourly segment refresh then places them exactly.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

campaigns = sa.table(
    "campaigns",
    sa.column("id", sa.BigInteger),
    sa.column("locale", sa.String),
    sa.column("template", sa.Text),
    sa.column("template_zh", sa.Text),
    sa.column("template_en", sa.Text),
)
offers = sa.table(
    "offers",
    sa.column("id", sa.BigInteger),
    sa.column("key", sa.String),
    sa.column("title", sa.String),
    sa.column("title_zh", sa.String),
    sa.column("title_en", sa.String),
)
members = sa.table(
    "members",
    sa.column("lifecycle_stage", sa.String),
    sa.column("last_purchase_at", sa.DateTime),
)


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template_zh", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("template_en", sa.Text(), nullable=True))
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("title_zh", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("title_en", sa.String(length=120), nullable=True))

    op.execute(
        campaigns.update()
        .where(campaigns.c.locale == "en")
        .values(template_en=campaigns.c.template)
    )
    op.execute(
        campaigns.update()
        .where(campaigns.c.locale != "en")
        .values(template_zh=campaigns.c.template)
    )
    connection = op.get_bind()
    staff_offers = connection.execute(
        sa.select(offers.c.id, offers.c.title).where(offers.c.key.is_(None))
    ).all()
    for offer_id, title in staff_offers:
        column = "title_zh" if _CJK.search(title or "") else "title_en"
        connection.execute(offers.update().where(offers.c.id == offer_id).values({column: title}))
    op.execute(
        members.update()
        .where(members.c.lifecycle_stage == "unsubscribed", members.c.last_purchase_at.is_(None))
        .values(lifecycle_stage="prospect")
    )
    op.execute(
        members.update()
        .where(members.c.lifecycle_stage == "unsubscribed")
        .values(lifecycle_stage="active")
    )


def downgrade() -> None:
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.drop_column("title_en")
        batch_op.drop_column("title_zh")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("template_en")
        batch_op.drop_column("template_zh")
