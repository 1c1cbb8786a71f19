"""Every care rule, declared in one place.

A rule says *what* happens: which trigger makes a member due, for whom, how long after the
trigger, with which template and offer, whether it is marketing (needs consent, counts against
the frequency cap, may carry an offer) or service (about the member's own purchase or
complaint; never an offer), and whether a holdout group measures it. Each trigger's module in
``care.automation.triggers`` knows *how* to find its due members with one set-based query.

Switch a rule off with the ``CARE_RULES_DISABLED`` setting (comma-separated rule names).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from care.core.config import CareConfig
from storage.enums import MessageKind, SurveyKind


class Trigger(StrEnum):
    """What makes a member due; each is a module of ``care.automation.triggers``."""

    JOINED = "joined"  # registered_at + delay
    PURCHASE = "purchase"  # purchases.purchased_at + delay
    BIRTHDAY = "birthday"  # the birthday, at ``local_time`` in the member's timezone
    AT_RISK = "at_risk"  # lifecycle stage became at_risk (stage_changed_at)
    LAPSED = "lapsed"  # lifecycle stage became lapsed (stage_changed_at)
    COUPON_EXPIRY = "coupon_expiry"  # coupons.expires_at - delay, not yet redeemed
    ANNIVERSARY = "anniversary"  # registered_at + whole years
    NPS_CYCLE = "nps_cycle"  # registered_at + every ``period``
    TIER_UPGRADE = "tier_upgrade"  # tier_changed_at, when a purchase raised the tier
    NEAR_NEXT_TIER = "near_next_tier"  # spend_12m within ``near_tier_pct`` of the next tier
    REFERRAL = "referral"  # an invited friend's first_purchase_at
    COMPLAINT_CLOSED = "complaint_closed"  # tickets.closed_at + delay
    LOW_SCORE = "low_score"  # an answer, handled at once where it is recorded


class Audience(StrEnum):
    """Who may be due, beyond the trigger itself."""

    MEMBERS = "members"  # every registered, not deleted member
    SURVEY_TAKERS = "survey_takers"  # members who accept surveys
    ACTIVE_SURVEY_TAKERS = "active_survey_takers"  # active/won-back members accepting surveys
    REFERRERS = "referrers"  # the member who invited the friend
    STAFF = "staff"  # owners and admins (alerts)


@dataclass(frozen=True, slots=True)
class Rule:
    """One care rule.

    ``delay`` is how long after the trigger the member is due; ``max_late`` is how late the
    message is still worth sending (it bounds the query window and the catch-up after downtime).
    ``holdout`` rules keep ``config.holdout_pct`` percent of due members as a comparison group
    that gets nothing. ``event`` rules are handled where the event happens (``handled_by``), not
    by the scheduler; they are listed so the registry is complete.
    """

    name: str
    trigger: Trigger
    kind: MessageKind
    audience: Audience = Audience.MEMBERS
    delay: timedelta = timedelta(0)
    max_late: timedelta = timedelta(days=2)
    template: str | None = None
    offer: str | None = None
    holdout: bool = False
    survey: SurveyKind | None = None
    # Do not repeat within this time for the same member (a survey-fatigue guard, a nudge pace).
    repeat_after: timedelta | None = None
    # The rule this one follows up: its message knows whether the member has bought since
    # (``purchase_count``) and whether that rule's coupon still waits unused (``coupon_waiting``).
    follows_up: str | None = None
    event: bool = False
    handled_by: str | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if self.kind != MessageKind.MARKETING and self.offer and self.trigger != Trigger.REFERRAL:
            raise ValueError(f"rule {self.name}: only marketing rules carry offers")
        if not self.event and self.template is None:
            raise ValueError(f"rule {self.name}: a scheduled rule needs a template")

    @property
    def is_marketing(self) -> bool:
        return self.kind == MessageKind.MARKETING

    def enabled(self, config: CareConfig) -> bool:
        return self.name not in config.rules_disabled


RULES: tuple[Rule, ...] = (
    Rule(
        name="welcome",
        trigger=Trigger.JOINED,
        kind=MessageKind.MARKETING,
        max_late=timedelta(days=3),
        template="welcome",
        offer="welcome",
        holdout=True,
        summary="Welcome on joining, with a new-member coupon.",
    ),
    Rule(
        name="welcome_followup",
        trigger=Trigger.JOINED,
        kind=MessageKind.MARKETING,
        delay=timedelta(days=3),
        max_late=timedelta(days=3),
        template="welcome_followup",
        holdout=True,
        follows_up="welcome",
        summary="A follow-up three days after joining: thanks, or an invitation to visit.",
    ),
    Rule(
        name="purchase_survey",
        trigger=Trigger.PURCHASE,
        kind=MessageKind.SERVICE,
        audience=Audience.SURVEY_TAKERS,
        delay=timedelta(hours=3),
        max_late=timedelta(days=2),
        template="purchase_survey",
        survey=SurveyKind.CSAT,
        repeat_after=timedelta(days=14),
        summary="CSAT and expectation survey three hours after a purchase (once in 14 days).",
    ),
    Rule(
        name="birthday",
        trigger=Trigger.BIRTHDAY,
        kind=MessageKind.MARKETING,
        max_late=timedelta(hours=14),
        template="birthday",
        offer="birthday",
        holdout=True,
        summary="Birthday greeting with a coupon at 10:00 the member's local time.",
    ),
    Rule(
        name="winback",
        trigger=Trigger.AT_RISK,
        kind=MessageKind.MARKETING,
        max_late=timedelta(days=7),
        template="winback",
        offer="winback",
        holdout=True,
        summary="Win-back offer when a member turns at risk by the shop's churn signal.",
    ),
    Rule(
        name="last_chance",
        trigger=Trigger.LAPSED,
        kind=MessageKind.MARKETING,
        max_late=timedelta(days=7),
        template="last_chance",
        offer="last_chance",
        holdout=True,
        summary="Last-chance offer when a member has lapsed.",
    ),
    Rule(
        name="coupon_expiry",
        trigger=Trigger.COUPON_EXPIRY,
        kind=MessageKind.MARKETING,
        delay=timedelta(days=3),
        max_late=timedelta(days=3),
        template="coupon_expiry",
        holdout=True,
        summary="Reminder three days before an unused coupon expires.",
    ),
    Rule(
        name="anniversary",
        trigger=Trigger.ANNIVERSARY,
        kind=MessageKind.MARKETING,
        max_late=timedelta(days=2),
        template="anniversary",
        offer="anniversary",
        holdout=True,
        summary="Membership anniversary with a gift, every year on the joining day.",
    ),
    Rule(
        name="nps_survey",
        trigger=Trigger.NPS_CYCLE,
        kind=MessageKind.SERVICE,
        audience=Audience.ACTIVE_SURVEY_TAKERS,
        delay=timedelta(days=90),
        max_late=timedelta(days=2),
        template="nps_survey",
        survey=SurveyKind.NPS,
        repeat_after=timedelta(days=60),
        summary="NPS survey every 90 days of membership, for active members.",
    ),
    Rule(
        name="tier_upgrade",
        trigger=Trigger.TIER_UPGRADE,
        kind=MessageKind.SERVICE,
        max_late=timedelta(days=3),
        template="tier_upgrade",
        summary="Congratulations on reaching a higher tier.",
    ),
    Rule(
        name="tier_nudge",
        trigger=Trigger.NEAR_NEXT_TIER,
        kind=MessageKind.MARKETING,
        delay=timedelta(days=1),
        max_late=timedelta(days=6),
        template="tier_nudge",
        holdout=True,
        repeat_after=timedelta(days=90),
        summary="A nudge the day after a purchase that left a member close to the next tier.",
    ),
    Rule(
        name="referral_reward",
        trigger=Trigger.REFERRAL,
        kind=MessageKind.SERVICE,
        audience=Audience.REFERRERS,
        max_late=timedelta(days=30),
        template="referral_reward",
        offer="referral",
        summary="Reward to the referrer when an invited friend makes a first purchase.",
    ),
    Rule(
        name="complaint_followup",
        trigger=Trigger.COMPLAINT_CLOSED,
        kind=MessageKind.SERVICE,
        delay=timedelta(days=3),
        max_late=timedelta(days=4),
        template="complaint_followup",
        summary="A check-in three days after a complaint was closed.",
    ),
    Rule(
        name="low_score_alert",
        trigger=Trigger.LOW_SCORE,
        kind=MessageKind.ALERT,
        audience=Audience.STAFF,
        event=True,
        handled_by="care.conversations.surveys.answer → care.staff.alerts.alert_staff",
        summary="Immediate alert to staff on a detractor (NPS ≤ 6) or CSAT/ticket rating ≤ 2.",
    ),
)

BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}

# How close counts as "close to the next tier": within this share of the next threshold.
NEAR_TIER_PCT = 20
# The birthday greeting's local time.
BIRTHDAY_HOUR = 10


def get_rule(name: str) -> Rule:
    """The rule called ``name``; KeyError names the known rules."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no care rule {name!r}; known: {', '.join(BY_NAME)}") from None


def scheduled_rules(config: CareConfig, only: str | None = None) -> list[Rule]:
    """The rules the scheduler evaluates: enabled, not event-driven, optionally just one."""
    rules = [get_rule(only)] if only else list(RULES)
    return [rule for rule in rules if not rule.event and rule.enabled(config)]
