"""What the treatment arm of a rule gets: the rule's reward, its survey, its message.

The same for every trigger, driven by what the rule declares: an ``offer`` gives each treated
member a coupon (``care.loyalty.coupons.issue_coupons``, one batch) or points
(``care.loyalty.points.add_points``); a ``survey`` creates the invitations
(``care.conversations.surveys.create_invitations``) whose buttons ride on the message;
``follows_up`` tells whether the followed rule's coupon still waits. The trigger adds its own
facts (``TriggerPass.load_facts`` / ``message_facts``); the text is rendered in each member's
language and becomes an outbox item.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from care.automation.rules import Rule
from care.automation.touches import touch_key
from care.automation.triggers import Candidate, TriggerPass
from care.conversations.surveys import Invitee, create_invitations, invitation_markup
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import LOCALES
from care.core.templates import member_context, render_rule
from care.loyalty.coupons import coupon_facts, issue_coupons
from care.loyalty.offers import offer_usable, rule_offer
from care.loyalty.points import add_points
from care.members.referrals import first_word
from care.messaging.opt_out import with_opt_out
from care.messaging.outbox import OutboxItem
from storage.enums import MessageKind, OfferKind, PointsReason
from storage.models import Coupon, Offer


def coupon_source(rule_name: str) -> str:
    """The ``coupons.source`` of the coupons a rule gives."""
    return f"rule:{rule_name}"[:32]


class Actor:
    """Turns won treatment touches into rewards, survey invitations and outbox items."""

    def __init__(
        self,
        session: AsyncSession,
        config: CareConfig,
        clock: Clock,
        rule: Rule,
        trigger: TriggerPass[*tuple[Any, ...]],
    ) -> None:
        self.session = session
        self.config = config
        self.clock = clock
        self.rule = rule
        self.trigger = trigger
        self.offer: Offer | None = None

    async def prepare(self) -> None:
        """Load the rule's offer (again after a rollback expired it)."""
        if self.rule.offer is not None:
            self.offer = await rule_offer(self.session, self.clock, self.config, self.rule.offer)

    def offer_usable(self) -> bool:
        """The rule gives no offer, or its offer is switched on and not over."""
        return self.rule.offer is None or offer_usable(self.offer, self.clock.now())

    async def load_facts(self, treated: list[Candidate]) -> None:
        """What a whole batch's messages need, written or read with one statement each."""
        ids = [c.member.id for c in treated]
        if self.offer is not None and self.offer.kind != OfferKind.POINTS:
            issued = await issue_coupons(
                self.session, self.clock, member_ids=ids, offer=self.offer,
                source=coupon_source(self.rule.name),
            )  # fmt: skip
            for c in treated:
                c.facts["new_coupon"] = issued[c.member.id]
        if self.rule.survey is not None:
            invitees = [Invitee(c.member.id, c.facts.get("purchase_id")) for c in treated]
            invitations = await create_invitations(
                self.session, self.clock, kind=self.rule.survey, invitees=invitees
            )
            for c, invitation in zip(treated, invitations, strict=True):
                c.facts["invitation"] = invitation
        if self.rule.follows_up is not None:
            await self._follow_up_facts(self.rule.follows_up, treated)
        await self.trigger.load_facts(treated)

    async def _follow_up_facts(self, followed: str, treated: list[Candidate]) -> None:
        waiting = set(
            await self.session.scalars(
                select(Coupon.member_id).where(
                    Coupon.member_id.in_([c.member.id for c in treated]),
                    Coupon.source == coupon_source(followed),
                    Coupon.redeemed_at.is_(None),
                    or_(Coupon.expires_at.is_(None), Coupon.expires_at > self.clock.now()),
                )
            )
        )
        for c in treated:
            c.facts["coupon_waiting"] = c.member.id in waiting
            c.facts["purchase_count"] = c.member.purchase_count or 0

    async def act(self, candidate: Candidate) -> OutboxItem:
        """The member's reward (points are credited here) and the message about it."""
        member = candidate.member
        locale = member.locale if member.locale in LOCALES else self.config.default_locale
        tz = member.timezone or self.config.default_timezone
        facts = dict(candidate.facts)
        offer = self.offer
        if offer is not None and offer.kind == OfferKind.POINTS:
            facts["points"] = await add_points(
                self.session, self.clock, member_id=member.id, delta=offer.value,
                reason=PointsReason.REFERRAL, note=first_word(facts.get("friend_name")),
            )  # fmt: skip
            facts["reward_points"] = offer.value
            facts["coupon"] = None
        elif offer is not None:
            issued = facts.pop("new_coupon")
            facts["coupon"] = coupon_facts(issued.code, issued.expires_at, offer, locale, tz)
        self.trigger.message_facts(facts, member, locale, tz)
        reply_markup: dict[str, Any] | None = None
        if self.rule.survey is not None:
            reply_markup = invitation_markup(facts.pop("invitation"), locale)
        context = member_context(member, self.config, **_template_facts(facts))
        assert member.chat_id is not None  # the trigger's query asks for reachable members
        text = render_rule(self.rule.template or self.rule.name, locale, context)
        if self.rule.kind == MessageKind.MARKETING:
            text = with_opt_out(text, locale)
        return OutboxItem(
            key=touch_key(self.rule.name, member.id, candidate.occasion),
            chat_id=member.chat_id,
            text=text,
            kind=self.rule.kind,
            member_id=member.id,
            timezone=tz,
            rule=self.rule.name,
            reply_markup=reply_markup,
        )


def _template_facts(facts: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in facts.items() if not isinstance(v, datetime)}
