"""Initial schema: every table carebot uses, and the default loyalty tiers.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("actor_telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_role", sa.String(length=8), nullable=True),
        sa.Column("action", sa.String(length=48), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        op.f("ix_audit_log_actor_telegram_id"), "audit_log", ["actor_telegram_id"], unique=False
    )
    op.create_index(op.f("ix_audit_log_created_at"), "audit_log", ["created_at"], unique=False)
    op.create_table(
        "fsm_state",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=255), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_fsm_state")),
    )
    op.create_table(
        "job_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("covered_until", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_holder", sa.String(length=64), nullable=True),
        sa.Column("lease_until", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_state")),
    )
    op.create_table(
        "members",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("member_code", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("birthday", sa.Date(), nullable=True),
        sa.Column("birthday_md", sa.SmallInteger(), nullable=True),
        sa.Column(
            "birthday_locked", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("profile_consent_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "marketing_opt_in", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("marketing_changed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("surveys_opt_in", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("surveys_changed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("blocked_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "referrer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("referral_rewarded_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("tier_code", sa.String(length=16), nullable=False),
        sa.Column("tier_changed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("points_balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("first_purchase_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_purchase_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("purchase_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_spent_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("spend_12m_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("avg_gap_days", sa.Float(), nullable=True),
        sa.Column("rfm_r", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_f", sa.SmallInteger(), nullable=True),
        sa.Column("rfm_m", sa.SmallInteger(), nullable=True),
        sa.Column("value_tier", sa.String(length=8), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("stage_changed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("churn_risk", sa.Float(), nullable=True),
        sa.Column(
            "segments_refreshed_at", storage.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("registered_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["referrer_id"],
            ["members.id"],
            name=op.f("fk_members_referrer_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint("member_code", name=op.f("uq_members_member_code")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_members_telegram_id")),
    )
    op.create_index(op.f("ix_members_birthday_md"), "members", ["birthday_md"], unique=False)
    op.create_index(
        op.f("ix_members_first_purchase_at"), "members", ["first_purchase_at"], unique=False
    )
    op.create_index(
        op.f("ix_members_last_purchase_at"), "members", ["last_purchase_at"], unique=False
    )
    op.create_index(
        op.f("ix_members_lifecycle_stage"), "members", ["lifecycle_stage"], unique=False
    )
    op.create_index(
        "ix_members_lifecycle_stage_stage_changed_at",
        "members",
        ["lifecycle_stage", "stage_changed_at"],
        unique=False,
    )
    op.create_index(op.f("ix_members_phone"), "members", ["phone"], unique=False)
    op.create_index(op.f("ix_members_referrer_id"), "members", ["referrer_id"], unique=False)
    op.create_index(op.f("ix_members_registered_at"), "members", ["registered_at"], unique=False)
    op.create_index(op.f("ix_members_status"), "members", ["status"], unique=False)
    op.create_index(
        op.f("ix_members_tier_changed_at"), "members", ["tier_changed_at"], unique=False
    )
    op.create_index(op.f("ix_members_tier_code"), "members", ["tier_code"], unique=False)
    op.create_index(op.f("ix_members_value_tier"), "members", ["value_tier"], unique=False)
    op.create_table(
        "offers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=True),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("min_spend_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("valid_from", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("valid_until", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("coupon_valid_days", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
        sa.UniqueConstraint("key", name=op.f("uq_offers_key")),
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=True),
        sa.Column("added_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff")),
        sa.UniqueConstraint("telegram_id", name=op.f("uq_staff_telegram_id")),
    )
    op.create_table(
        "tiers",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("name_en", sa.String(length=32), nullable=False),
        sa.Column("name_zh", sa.String(length=32), nullable=False),
        sa.Column("min_spend_12m_minor", sa.BigInteger(), nullable=False),
        sa.Column("points_multiplier_pct", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tiers")),
        sa.UniqueConstraint("rank", name=op.f("uq_tiers_rank")),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("photo_file_id", sa.String(length=255), nullable=True),
        sa.Column("offer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("scheduled_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("recipients", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("progress_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("progress_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("kind", sa.String(length=12), server_default="broadcast", nullable=False),
        sa.Column("notify", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("locale", sa.String(length=8), server_default="zh", nullable=False),
        sa.Column("launch_cursor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("launch_lease_until", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("launched_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("queued", sa.Integer(), server_default="0", nullable=False),
        sa.Column("coupons_issued", sa.Integer(), server_default="0", nullable=False),
        sa.Column("skipped", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["offers.id"],
            name=op.f("fk_campaigns_offer_id_offers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_status"), "campaigns", ["status"], unique=False)
    op.create_table(
        "consent_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_consent_events_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index(
        op.f("ix_consent_events_member_id"), "consent_events", ["member_id"], unique=False
    )
    op.create_table(
        "member_interests",
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_member_interests_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", "category", name=op.f("pk_member_interests")),
    )
    op.create_index(
        op.f("ix_member_interests_category"), "member_interests", ["category"], unique=False
    )
    op.create_table(
        "purchases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("receipt_id", sa.String(length=64), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("purchased_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("points_earned", sa.Integer(), server_default="0", nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_purchases_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        sa.UniqueConstraint("receipt_id", name=op.f("uq_purchases_receipt_id")),
    )
    op.create_index(
        "ix_purchases_member_id_purchased_at_amount_minor",
        "purchases",
        ["member_id", "purchased_at", "amount_minor"],
        unique=False,
    )
    op.create_index(op.f("ix_purchases_purchased_at"), "purchases", ["purchased_at"], unique=False)
    op.create_table(
        "tickets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("forum_topic_id", sa.BigInteger(), nullable=True),
        sa.Column("forum_synced_message_id", sa.BigInteger(), nullable=True),
        sa.Column("handling_rating", sa.SmallInteger(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_tickets_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
    )
    op.create_index(op.f("ix_tickets_closed_at"), "tickets", ["closed_at"], unique=False)
    op.create_index(op.f("ix_tickets_forum_topic_id"), "tickets", ["forum_topic_id"], unique=False)
    op.create_index(op.f("ix_tickets_member_id"), "tickets", ["member_id"], unique=False)
    op.create_index(
        "ix_tickets_status_created_at", "tickets", ["status", "created_at"], unique=False
    )
    op.create_table(
        "coupons",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "offer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("issued_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("redeemed_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("redeemed_by", sa.BigInteger(), nullable=True),
        sa.Column("expiry_reminded_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_coupons_campaign_id_campaigns"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_coupons_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["offers.id"],
            name=op.f("fk_coupons_offer_id_offers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupons")),
        sa.UniqueConstraint("code", name=op.f("uq_coupons_code")),
    )
    op.create_index(op.f("ix_coupons_expires_at"), "coupons", ["expires_at"], unique=False)
    op.create_index(
        "ix_coupons_member_id_redeemed_at", "coupons", ["member_id", "redeemed_at"], unique=False
    )
    op.create_index(op.f("ix_coupons_offer_id"), "coupons", ["offer_id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=160), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=True),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("photo", sa.String(length=255), nullable=True),
        sa.Column("reply_markup", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("skip_reason", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("not_before", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("locked_until", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=True),
        sa.Column("telegram_message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_outbox_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_outbox_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index(
        "ix_outbox_campaign_id_status", "outbox", ["campaign_id", "status"], unique=False
    )
    op.create_index(
        "ix_outbox_member_id_kind_created_at",
        "outbox",
        ["member_id", "kind", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_outbox_status_kind_not_before",
        "outbox",
        ["status", "kind", "not_before"],
        unique=False,
    )
    op.create_index(
        "ix_outbox_status_not_before", "outbox", ["status", "not_before"], unique=False
    )
    op.create_table(
        "points_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column(
            "purchase_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("note", sa.String(length=200), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_points_ledger_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_points_ledger_purchase_id_purchases"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_points_ledger")),
    )
    op.create_index(
        "ix_points_ledger_member_id_id", "points_ledger", ["member_id", "id"], unique=False
    )
    op.create_table(
        "survey_invitations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("nonce", sa.String(length=16), nullable=False),
        sa.Column(
            "purchase_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answered_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_survey_invitations_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["purchase_id"],
            ["purchases.id"],
            name=op.f("fk_survey_invitations_purchase_id_purchases"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_survey_invitations_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_invitations")),
    )
    op.create_index(
        "ix_survey_invitations_member_id_kind_created_at",
        "survey_invitations",
        ["member_id", "kind", "created_at"],
        unique=False,
    )
    op.create_table(
        "ticket_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("author", sa.String(length=8), nullable=False),
        sa.Column("staff_telegram_id", sa.BigInteger(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("photo_file_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_messages_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_messages")),
    )
    op.create_index(
        op.f("ix_ticket_messages_ticket_id"), "ticket_messages", ["ticket_id"], unique=False
    )
    op.create_table(
        "care_touches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("occasion", sa.String(length=64), nullable=False),
        sa.Column("arm", sa.String(length=10), nullable=False),
        sa.Column(
            "outbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("decided_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("converted_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_care_touches_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name=op.f("fk_care_touches_outbox_id_outbox"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_care_touches")),
        sa.UniqueConstraint(
            "rule", "member_id", "occasion", name=op.f("uq_care_touches_rule_member_id_occasion")
        ),
    )
    op.create_index(op.f("ix_care_touches_member_id"), "care_touches", ["member_id"], unique=False)
    op.create_index(
        "ix_care_touches_rule_decided_at", "care_touches", ["rule", "decided_at"], unique=False
    )
    op.create_index(
        "ix_care_touches_rule_member_id_decided_at",
        "care_touches",
        ["rule", "member_id", "decided_at"],
        unique=False,
    )
    op.create_table(
        "survey_responses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "invitation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("expectation", sa.String(length=16), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("needs_followup", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("followed_up_at", storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("followed_up_by", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["survey_invitations.id"],
            name=op.f("fk_survey_responses_invitation_id_survey_invitations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_survey_responses_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_responses")),
        sa.UniqueConstraint("invitation_id", name=op.f("uq_survey_responses_invitation_id")),
    )
    op.create_index(
        "ix_survey_responses_kind_created_at",
        "survey_responses",
        ["kind", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_survey_responses_member_id"), "survey_responses", ["member_id"], unique=False
    )

    # The loyalty tiers every shop starts with; staff may change thresholds later.
    op.bulk_insert(
        sa.table(
            "tiers",
            sa.column("code", sa.String),
            sa.column("rank", sa.SmallInteger),
            sa.column("name_en", sa.String),
            sa.column("name_zh", sa.String),
            sa.column("min_spend_12m_minor", sa.BigInteger),
            sa.column("points_multiplier_pct", sa.SmallInteger),
        ),
        [
            {
                "code": "member",
                "rank": 1,
                "name_en": "Member",
                "name_zh": "普通会员",
                "min_spend_12m_minor": 0,
                "points_multiplier_pct": 100,
            },
            {
                "code": "silver",
                "rank": 2,
                "name_en": "Silver",
                "name_zh": "银卡会员",
                "min_spend_12m_minor": 100000,
                "points_multiplier_pct": 125,
            },
            {
                "code": "gold",
                "rank": 3,
                "name_en": "Gold",
                "name_zh": "金卡会员",
                "min_spend_12m_minor": 500000,
                "points_multiplier_pct": 150,
            },
            {
                "code": "platinum",
                "rank": 4,
                "name_en": "Platinum",
                "name_zh": "白金会员",
                "min_spend_12m_minor": 2000000,
                "points_multiplier_pct": 200,
            },
        ],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_survey_responses_member_id"), table_name="survey_responses")
    op.drop_index("ix_survey_responses_kind_created_at", table_name="survey_responses")
    op.drop_table("survey_responses")
    op.drop_index("ix_care_touches_rule_member_id_decided_at", table_name="care_touches")
    op.drop_index("ix_care_touches_rule_decided_at", table_name="care_touches")
    op.drop_index(op.f("ix_care_touches_member_id"), table_name="care_touches")
    op.drop_table("care_touches")
    op.drop_index(op.f("ix_ticket_messages_ticket_id"), table_name="ticket_messages")
    op.drop_table("ticket_messages")
    op.drop_index(
        "ix_survey_invitations_member_id_kind_created_at", table_name="survey_invitations"
    )
    op.drop_table("survey_invitations")
    op.drop_index("ix_points_ledger_member_id_id", table_name="points_ledger")
    op.drop_table("points_ledger")
    op.drop_index("ix_outbox_status_not_before", table_name="outbox")
    op.drop_index("ix_outbox_status_kind_not_before", table_name="outbox")
    op.drop_index("ix_outbox_member_id_kind_created_at", table_name="outbox")
    op.drop_index("ix_outbox_campaign_id_status", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_coupons_offer_id"), table_name="coupons")
    op.drop_index("ix_coupons_member_id_redeemed_at", table_name="coupons")
    op.drop_index(op.f("ix_coupons_expires_at"), table_name="coupons")
    op.drop_table("coupons")
    op.drop_index("ix_tickets_status_created_at", table_name="tickets")
    op.drop_index(op.f("ix_tickets_member_id"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_forum_topic_id"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_closed_at"), table_name="tickets")
    op.drop_table("tickets")
    op.drop_index(op.f("ix_purchases_purchased_at"), table_name="purchases")
    op.drop_index("ix_purchases_member_id_purchased_at_amount_minor", table_name="purchases")
    op.drop_table("purchases")
    op.drop_index(op.f("ix_member_interests_category"), table_name="member_interests")
    op.drop_table("member_interests")
    op.drop_index(op.f("ix_consent_events_member_id"), table_name="consent_events")
    op.drop_table("consent_events")
    op.drop_index(op.f("ix_campaigns_status"), table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_table("tiers")
    op.drop_table("staff")
    op.drop_table("offers")
    op.drop_index(op.f("ix_members_value_tier"), table_name="members")
    op.drop_index(op.f("ix_members_tier_code"), table_name="members")
    op.drop_index(op.f("ix_members_tier_changed_at"), table_name="members")
    op.drop_index(op.f("ix_members_status"), table_name="members")
    op.drop_index(op.f("ix_members_registered_at"), table_name="members")
    op.drop_index(op.f("ix_members_referrer_id"), table_name="members")
    op.drop_index(op.f("ix_members_phone"), table_name="members")
    op.drop_index("ix_members_lifecycle_stage_stage_changed_at", table_name="members")
    op.drop_index(op.f("ix_members_lifecycle_stage"), table_name="members")
    op.drop_index(op.f("ix_members_last_purchase_at"), table_name="members")
    op.drop_index(op.f("ix_members_first_purchase_at"), table_name="members")
    op.drop_index(op.f("ix_members_birthday_md"), table_name="members")
    op.drop_table("members")
    op.drop_table("job_state")
    op.drop_table("fsm_state")
    op.drop_index(op.f("ix_audit_log_created_at"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_actor_telegram_id"), table_name="audit_log")
    op.drop_table("audit_log")
