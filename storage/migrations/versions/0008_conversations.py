"""Conversations: tickets become conversations (waiting time, assignment), messages carry any
Telegram media by file id, saved replies, and the outbox sends media of any kind.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column("waiting_since", storage.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("assigned_to", sa.BigInteger(), nullable=True))
        batch.create_index(batch.f("ix_tickets_assigned_to"), ["assigned_to"], unique=False)
        batch.create_index(
            "ix_tickets_status_waiting_since", ["status", "waiting_since"], unique=False
        )
    # An open ticket has been waiting since its last change.
    op.execute("UPDATE tickets SET waiting_since = updated_at WHERE status = 'open'")
    with op.batch_alter_table("ticket_messages") as batch:
        batch.alter_column(
            "photo_file_id",
            new_column_name="file_id",
            existing_type=sa.String(length=255),
            existing_nullable=True,
        )
        batch.add_column(sa.Column("media_kind", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("media_group_id", sa.String(length=64), nullable=True))
    op.execute("UPDATE ticket_messages SET media_kind = 'photo' WHERE file_id IS NOT NULL")
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("media_kind", sa.String(length=16), nullable=True))
    op.create_table(
        "saved_replies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("title", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_replies")),
        sa.UniqueConstraint("title", name=op.f("uq_saved_replies_title")),
    )


def downgrade() -> None:
    op.drop_table("saved_replies")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("media_kind")
    with op.batch_alter_table("ticket_messages") as batch:
        batch.drop_column("media_group_id")
        batch.drop_column("media_kind")
        batch.alter_column(
            "file_id",
            new_column_name="photo_file_id",
            existing_type=sa.String(length=255),
            existing_nullable=True,
        )
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_status_waiting_since")
        batch.drop_index(batch.f("ix_tickets_assigned_to"))
        batch.drop_column("assigned_to")
        batch.drop_column("waiting_since")
