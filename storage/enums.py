"""Closed vocabularies stored as short strings (portable, readable in SQL, easy to migrate)."""

from __future__ import annotations

from enum import StrEnum


class MemberStatus(StrEnum):
    REGISTERING = "registering"
    ACTIVE = "active"
    DELETED = "deleted"
    # From the shop's old customer list, not yet in Telegram: no chat, so never messaged; they
    # become ACTIVE when they share that phone number as their own contact while registering.
    IMPORTED = "imported"


class LifecycleStage(StrEnum):
    PROSPECT = "prospect"
    NEW = "new"
    ACTIVE = "active"
    AT_RISK = "at_risk"
    LAPSED = "lapsed"
    WON_BACK = "won_back"
    # Retired: consent is the member's marketing flag, not a stage. Migration 0006 moved the
    # rows; the value stays readable for a database not yet migrated (see RETIRED_STAGES).
    UNSUBSCRIBED = "unsubscribed"
    UNREACHABLE = "unreachable"


# Stages no member is put in any more: not counted, charted or offered as an audience.
RETIRED_STAGES = frozenset({LifecycleStage.UNSUBSCRIBED})
# The stages members can be in, in the order staff read them.
CURRENT_STAGES = tuple(stage for stage in LifecycleStage if stage not in RETIRED_STAGES)


class ValueTier(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ConsentKind(StrEnum):
    PROFILE = "profile"
    MARKETING = "marketing"
    SURVEYS = "surveys"


class PointsReason(StrEnum):
    PURCHASE = "purchase"
    REFERRAL = "referral"
    BIRTHDAY = "birthday"
    ADJUSTMENT = "adjustment"
    REDEMPTION = "redemption"
    EXPIRY = "expiry"
    VOID = "void"
    REFUND = "refund"
    # The balance a member brought from the shop's old loyalty system (carebot import members).
    OPENING = "opening"
    # A goodwill gesture from staff (service recovery), with the reason the member was told.
    GOODWILL = "goodwill"


class OfferKind(StrEnum):
    PERCENT_OFF = "percent_off"
    AMOUNT_OFF = "amount_off"
    GIFT = "gift"
    POINTS = "points"


class TicketKind(StrEnum):
    COMPLAINT = "complaint"
    SUGGESTION = "suggestion"
    PRAISE = "praise"
    QUESTION = "question"
    # A conversation the shopper opened by simply writing to the shop.
    MESSAGE = "message"


class TicketStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class MediaKind(StrEnum):
    """What a conversation message carries besides text (kept as a Telegram file id)."""

    PHOTO = "photo"
    VIDEO = "video"
    ANIMATION = "animation"
    VOICE = "voice"
    AUDIO = "audio"
    VIDEO_NOTE = "video_note"
    DOCUMENT = "document"
    STICKER = "sticker"
    # No file: the coordinates are the message text ("lat,lon").
    LOCATION = "location"


class MessageAuthor(StrEnum):
    MEMBER = "member"
    STAFF = "staff"
    # A line staff see in the thread and the shopper does not (a goodwill gesture given).
    NOTE = "note"


class SurveyKind(StrEnum):
    CSAT = "csat"
    NPS = "nps"
    TICKET = "ticket"


class Expectation(StrEnum):
    WORSE = "worse"
    AS_EXPECTED = "as_expected"
    BETTER = "better"


class StaffRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    CASHIER = "cashier"

    @property
    def rank(self) -> int:
        return {"cashier": 1, "admin": 2, "owner": 3}[self.value]


class MessageKind(StrEnum):
    MARKETING = "marketing"
    SERVICE = "service"
    ALERT = "alert"


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class HoldoutArm(StrEnum):
    TREATMENT = "treatment"
    HOLDOUT = "holdout"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"
