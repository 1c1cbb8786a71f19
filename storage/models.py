"""The whole carebot schema.

Conventions: money is an integer count of minor units plus a currency code; every timestamp is a
timezone-aware UTC value (``UTCDateTime``); vocabularies are short strings from ``storage.enums``;
columns the care engine filters on are indexed. Telegram ids are attributes, never keys.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.types import BigIntPK, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    # Every model here maps one Table; saying so lets Core statements (update(Model.__table__))
    # type-check without a cast at each use (DeclarativeBase types it as any FromClause).
    __table__: ClassVar[Table]

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Member(Base):
    """A shopper. Identity, profile, consent, loyalty state, purchase aggregates and segments.

    Aggregates and segments live on the row so that every care query is a scan of one indexed
    table, never an aggregation over the purchase history.
    """

    __tablename__ = "members"
    # The care rules' triggers: each rule's due members are one range scan.
    __table_args__ = (
        Index(
            "ix_members_lifecycle_stage_stage_changed_at", "lifecycle_stage", "stage_changed_at"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    telegram_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(String(64))
    member_code: Mapped[str] = mapped_column(String(16), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="registering", index=True)

    name: Mapped[str | None] = mapped_column(String(128))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    birthday: Mapped[date | None] = mapped_column(Date)
    # month * 100 + day: lets the birthday rule find today's members with an index.
    birthday_md: Mapped[int | None] = mapped_column(SmallInteger, index=True)
    birthday_locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    locale: Mapped[str] = mapped_column(String(8), default="zh")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")

    profile_consent_at: Mapped[datetime | None]
    marketing_opt_in: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    marketing_changed_at: Mapped[datetime | None]
    surveys_opt_in: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    surveys_changed_at: Mapped[datetime | None]
    blocked_at: Mapped[datetime | None]

    referrer_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL"), index=True
    )
    referral_rewarded_at: Mapped[datetime | None]
    source: Mapped[str | None] = mapped_column(String(64))

    tier_code: Mapped[str] = mapped_column(String(16), default="member", index=True)
    tier_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    points_balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    first_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_purchase_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    purchase_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    total_spent_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    spend_12m_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    avg_gap_days: Mapped[float | None] = mapped_column(Float)

    rfm_r: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_f: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_m: Mapped[int | None] = mapped_column(SmallInteger)
    value_tier: Mapped[str | None] = mapped_column(String(8), index=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="prospect", index=True)
    stage_changed_at: Mapped[datetime | None]
    churn_risk: Mapped[float | None] = mapped_column(Float)
    segments_refreshed_at: Mapped[datetime | None]

    created_at: Mapped[datetime]
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]

    # Loaded only where it is shown or changed (``MemberRepo.load_interests``): every other
    # read of a member, the one on each update above all, skips the second SELECT.
    interests: Mapped[list[MemberInterest]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )


class MemberValue(Base):
    """What the customer-value model (BG/NBD + Gamma-Gamma) predicts for one member with
    purchases, rewritten by each segment refresh. Expected counts are fractional on purpose:
    summed over members they are the shop's expected purchases.
    """

    __tablename__ = "member_value"

    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    # P(still a customer); the churn-risk audience is a range scan on it.
    p_alive: Mapped[float] = mapped_column(Float, index=True)
    purchases_30d: Mapped[float] = mapped_column(Float)
    purchases_90d: Mapped[float] = mapped_column(Float)
    spend_per_purchase_minor: Mapped[int] = mapped_column(BigInteger)
    value_12m_minor: Mapped[int] = mapped_column(BigInteger)
    refreshed_at: Mapped[datetime]
    # At risk of being lost by the shop's churn signal (``churn_signal``), as of refreshed_at.
    at_risk: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the member became at risk by that signal: the win-back rule's trigger time. None
    # while not at risk, and when being at risk was their first classification (an imported
    # history, a newly chosen signal): where a member stands is no news.
    at_risk_since: Mapped[datetime | None] = mapped_column(index=True)


class ChurnSignal(Base):
    """The churn signal the shop uses, chosen from its own backtest (``care.value.signal``):
    one row, rewritten when the choice is made again."""

    __tablename__ = "churn_signal"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    # p_alive, expected_purchases or gap_rule.
    signal: Mapped[str] = mapped_column(String(32))
    # "backtest": the best AUC on the shop's history; "thin_history": too little to judge.
    reason: Mapped[str] = mapped_column(String(16))
    auc_p_alive: Mapped[float | None] = mapped_column(Float)
    auc_expected_purchases: Mapped[float | None] = mapped_column(Float)
    auc_gap_rule: Mapped[float | None] = mapped_column(Float)
    # Customers who had bought by the cut-off, and how many of them bought again after it.
    customers: Mapped[int] = mapped_column(Integer)
    returners: Mapped[int] = mapped_column(Integer)
    cutoff: Mapped[date] = mapped_column(Date)
    holdout_until: Mapped[date] = mapped_column(Date)
    chosen_at: Mapped[datetime]
    # The signal member_value.at_risk was last computed with (a change of signal is no news).
    flags_signal: Mapped[str | None] = mapped_column(String(32))


class MemberInterest(Base):
    __tablename__ = "member_interests"

    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class ConsentEvent(Base):
    """Every grant and withdrawal of consent, with its time: the proof behind the flags."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]


class Tier(Base):
    __tablename__ = "tiers"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    rank: Mapped[int] = mapped_column(SmallInteger, unique=True)
    name_en: Mapped[str] = mapped_column(String(32))
    name_zh: Mapped[str] = mapped_column(String(32))
    min_spend_12m_minor: Mapped[int] = mapped_column(BigInteger)
    points_multiplier_pct: Mapped[int] = mapped_column(SmallInteger, default=100)


class Purchase(Base):
    """One receipt. The external receipt id makes recording idempotent.

    After a member deletes their data the row stays with ``member_id`` NULL: an anonymous
    aggregate that keeps the shop's totals true.
    """

    __tablename__ = "purchases"
    # The amounts and the void mark ride along so the 12-month net spend per member is an
    # index-only scan.
    __table_args__ = (
        Index(
            "ix_purchases_member_spend",
            "member_id",
            "purchased_at",
            "amount_minor",
            "refunded_minor",
            "voided_at",
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    receipt_id: Mapped[str] = mapped_column(String(64), unique=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    category: Mapped[str | None] = mapped_column(String(32))
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    points_earned: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    source: Mapped[str] = mapped_column(String(16), default="till")
    recorded_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    # Till corrections: the part of ``amount_minor`` given back (all of it once voided) and
    # the points taken back for it. ``amount_minor`` stays what was rung up.
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    points_reversed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    voided_at: Mapped[datetime | None]
    voided_by: Mapped[int | None] = mapped_column(BigInteger)


class PointsEntry(Base):
    """The points ledger. ``balance_after`` chains the entries; their sum is the balance."""

    __tablename__ = "points_ledger"
    __table_args__ = (Index("ix_points_ledger_member_id_id", "member_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    delta: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(24))
    purchase_id: Mapped[int | None] = mapped_column(
        ForeignKey("purchases.id", ondelete="SET NULL")
    )
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Offer(Base):
    """What a coupon gives. Rule offers carry a ``key`` (``welcome``, ``birthday`` …)."""

    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    key: Mapped[str | None] = mapped_column(String(32), unique=True)
    # ``title`` is the staff's working name; members read ``title_<their locale>`` (or the
    # other language's when one is empty) and, with neither, only what the offer gives.
    title: Mapped[str] = mapped_column(String(120))
    title_zh: Mapped[str | None] = mapped_column(String(120))
    title_en: Mapped[str | None] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    min_spend_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    valid_from: Mapped[datetime | None]
    valid_until: Mapped[datetime | None]
    coupon_valid_days: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (Index("ix_coupons_member_id_redeemed_at", "member_id", "redeemed_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(16), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL")
    )
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    redeemed_at: Mapped[datetime | None]
    redeemed_by: Mapped[int | None] = mapped_column(BigInteger)
    expiry_reminded_at: Mapped[datetime | None]

    offer: Mapped[Offer] = relationship(lazy="joined")


class Reward(Base):
    """A catalogue entry shoppers buy with points: ``points_cost`` for a coupon of ``offer``."""

    __tablename__ = "rewards"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(80))
    points_cost: Mapped[int] = mapped_column(BigInteger)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"))
    is_active: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true(), index=True
    )
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]

    offer: Mapped[Offer] = relationship(lazy="joined")


class Ticket(Base):
    """A conversation with a shopper: a feedback ticket (complaint, suggestion, praise, question)
    or a plain "message" conversation opened by whatever the shopper wrote, with its thread.

    ``status`` is ``open`` while the shop owes an answer (since ``waiting_since``), ``answered``
    while the shopper has the last word, ``closed`` when done; the shopper writing again into a
    closed conversation opens a new one.
    """

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_created_at", "status", "created_at"),
        # The inbox: waiting conversations, longest-waiting first.
        Index("ix_tickets_status_waiting_since", "status", "waiting_since"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    forum_topic_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # The last member message copied into the staff forum topic (forum mode only).
    forum_synced_message_id: Mapped[int | None] = mapped_column(BigInteger)
    handling_rating: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    closed_by: Mapped[int | None] = mapped_column(BigInteger)
    # When the shop started owing an answer (the shopper's first unanswered message).
    waiting_since: Mapped[datetime | None]
    # The staff member (Telegram id) who took the conversation.
    assigned_to: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # The low survey score this conversation follows up (staff opened or continued it from
    # the score's alert); no foreign key: responses point at tickets through their invitation.
    followup_of: Mapped[int | None] = mapped_column(BigInteger)

    messages: Mapped[list[TicketMessage]] = relationship(
        order_by="TicketMessage.id", cascade="all, delete-orphan", passive_deletes=True
    )


class TicketMessage(Base):
    """One message of a conversation: text, and/or one Telegram attachment kept by file id
    (never downloaded) with its kind (photo, video, voice, audio, document, sticker, animation,
    video_note) — or a location, kept as "lat,lon" text with kind ``location``."""

    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str] = mapped_column(String(8))
    staff_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str | None] = mapped_column(Text)
    media_kind: Mapped[str | None] = mapped_column(String(16))
    file_id: Mapped[str | None] = mapped_column(String(255))
    # Telegram's album id: the photos of one album arrive as separate messages.
    media_group_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]


class SavedReply(Base):
    """A canned answer staff can send in one tap; admins manage the list."""

    __tablename__ = "saved_replies"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    title: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class SurveyInvitation(Base):
    """An invitation to answer one survey. Answer buttons carry its id and a random nonce."""

    __tablename__ = "survey_invitations"
    __table_args__ = (
        Index(
            "ix_survey_invitations_member_id_kind_created_at", "member_id", "kind", "created_at"
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    nonce: Mapped[str] = mapped_column(String(16))
    purchase_id: Mapped[int | None] = mapped_column(
        ForeignKey("purchases.id", ondelete="SET NULL")
    )
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]


class SurveyResponse(Base):
    __tablename__ = "survey_responses"
    __table_args__ = (Index("ix_survey_responses_kind_created_at", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    invitation_id: Mapped[int] = mapped_column(
        ForeignKey("survey_invitations.id", ondelete="CASCADE"), unique=True
    )
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))
    score: Mapped[int] = mapped_column(SmallInteger)
    expectation: Mapped[str | None] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    # A detractor or CSAT <= 2 needs a human: no marketing reaches the member until then.
    needs_followup: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    followed_up_at: Mapped[datetime | None]
    followed_up_by: Mapped[int | None] = mapped_column(BigInteger)


class Staff(Base):
    """Admins and cashiers, and the owners' profiles.

    Owners come from the ADMIN_IDS setting: their row (role ``owner``) only keeps their name and
    language, and grants nothing: someone no longer in ADMIN_IDS is not an owner, row or not.
    """

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    role: Mapped[str] = mapped_column(String(8))
    # The display name and @username Telegram last showed for them (refreshed when they write).
    name: Mapped[str | None] = mapped_column(String(128))
    username: Mapped[str | None] = mapped_column(String(64))
    # The language staff texts and alerts reach them in; None until known.
    locale: Mapped[str | None] = mapped_column(String(8))
    added_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class StaffVersion(Base):
    """One row, bumped in the same transaction as every staff change.

    Each process keeps the staff roles in memory and reads this number along with the member on
    every update: a change made through any replica is seen by all of them at their next update,
    without a query per update for the roles themselves.
    """

    __tablename__ = "staff_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Campaign(Base):
    """A staff broadcast: audience filter, template, optional photo and offer, schedule."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The text in the staff's language when created; each member reads ``template_<locale>``,
    # the other language's when theirs is empty, and ``template`` for older campaigns.
    template: Mapped[str] = mapped_column(Text)
    template_zh: Mapped[str | None] = mapped_column(Text)
    template_en: Mapped[str | None] = mapped_column(Text)
    photo_file_id: Mapped[str | None] = mapped_column(String(255))
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(12), default="draft", index=True)
    scheduled_at: Mapped[datetime | None]
    recipients: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    progress_chat_id: Mapped[int | None] = mapped_column(BigInteger)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # "broadcast" (a staff message, coupon optional) or "coupons" (an offer issued to a
    # segment, the notification optional).
    kind: Mapped[str] = mapped_column(String(12), default="broadcast", server_default="broadcast")
    notify: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    locale: Mapped[str] = mapped_column(String(8), default="zh", server_default="zh")
    # The launch walks the audience by member id; the cursor makes a crashed launch resume
    # where it stopped, and its conditional update keeps two launchers from both sending.
    # The lease names a launcher at work: others leave the campaign alone until it expires.
    launch_cursor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    launch_lease_until: Mapped[datetime | None]
    launched_at: Mapped[datetime | None]
    queued: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    coupons_issued: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    skipped: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class OutboxMessage(Base):
    """Every care message and broadcast waits here until the delivery worker sends it.

    ``idempotency_key`` is unique: the same (rule, member, occasion) can never be queued twice.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_not_before", "status", "not_before"),
        # The delivery worker claims alerts and service answers before marketing.
        Index("ix_outbox_status_kind_not_before", "status", "kind", "not_before"),
        Index("ix_outbox_member_id_kind_created_at", "member_id", "kind", "created_at"),
        Index("ix_outbox_campaign_id_status", "campaign_id", "status"),
        # Erasure finds every staff alert that quotes a member by this, not by its text.
        Index("ix_outbox_about_member_id", "about_member_id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    # The member a message to someone else quotes (a staff alert with their name and words):
    # erasing that member deletes the message too.
    about_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE")
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(12))
    rule: Mapped[str | None] = mapped_column(String(32))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    # A Telegram file id to send with the text as caption; ``media_kind`` says how to send
    # it (NULL: a photo).
    photo: Mapped[str | None] = mapped_column(String(255))
    media_kind: Mapped[str | None] = mapped_column(String(16))
    reply_markup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    not_before: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(255))
    telegram_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class CareTouch(Base):
    """One decision of a care rule for one member and occasion, sent or held out.

    Held-out members get a row too: conversions of both arms give each rule's uplift.
    """

    __tablename__ = "care_touches"
    __table_args__ = (
        UniqueConstraint("rule", "member_id", "occasion"),
        # "Has this rule touched this member since …": two equalities and a range.
        Index("ix_care_touches_rule_member_id_decided_at", "rule", "member_id", "decided_at"),
        Index("ix_care_touches_rule_decided_at", "rule", "decided_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    rule: Mapped[str] = mapped_column(String(32))
    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), index=True
    )
    occasion: Mapped[str] = mapped_column(String(64))
    arm: Mapped[str] = mapped_column(String(10))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime]
    converted_at: Mapped[datetime | None]


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    actor_telegram_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    actor_role: Mapped[str | None] = mapped_column(String(8))
    action: Mapped[str] = mapped_column(String(48))
    target: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class JobState(Base):
    """Where each periodic job got to, and who holds its lease (one leader at a time)."""

    __tablename__ = "job_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    covered_until: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    lease_holder: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]


class ProcessedUpdate(Base):
    """A Telegram update whose unit of work committed: a re-sent update is not handled twice.

    Written in the update's own transaction; rows older than Telegram keeps updates are pruned.
    """

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    handled_at: Mapped[datetime] = mapped_column(index=True)


class FsmRecord(Base):
    """aiogram FSM state kept in the database, so a conversation survives a restart."""

    __tablename__ = "fsm_state"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime]


DEFAULT_TIERS: tuple[dict[str, Any], ...] = (
    {"code": "member", "rank": 1, "name_en": "Member", "name_zh": "普通会员",
     "min_spend_12m_minor": 0, "points_multiplier_pct": 100},
    {"code": "silver", "rank": 2, "name_en": "Silver", "name_zh": "银卡会员",
     "min_spend_12m_minor": 100_000, "points_multiplier_pct": 125},
    {"code": "gold", "rank": 3, "name_en": "Gold", "name_zh": "金卡会员",
     "min_spend_12m_minor": 500_000, "points_multiplier_pct": 150},
    {"code": "platinum", "rank": 4, "name_en": "Platinum", "name_zh": "白金会员",
     "min_spend_12m_minor": 2_000_000, "points_multiplier_pct": 200},
)  # fmt: skip
