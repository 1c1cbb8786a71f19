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
    UNSUBSCRIBED = "unsubscribed"
    UNREACHABLE = "unreachable"


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
    # The balance a member brought from the shop's old loyalty system (carebot import members).
    OPENING = "opening"


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


class TicketStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    CLOSED = "closed"


class MessageAuthor(StrEnum):
    MEMBER = "member"
    STAFF = "staff"


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
