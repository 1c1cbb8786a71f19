"""The 360° view of one member for staff: everything the shop knows, in one read.

Opening it reads personal data, so it is audited; the data comes back as plain values for the
chat (or any other face) to render.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.audit import audit
from care.core.clock import Clock
from care.loyalty.tiers import list_tiers
from care.members.lookup import find_members
from care.value.signal import GAP_RULE, current_signal
from storage.enums import MemberStatus, OutboxStatus
from storage.models import (
    Member,
    MemberValue,
    OutboxMessage,
    Purchase,
    SurveyResponse,
    Ticket,
    Tier,
)
from storage.repos.history import MemberHistoryRepo
from storage.repos.members import MemberRepo
from storage.repos.purchases import PurchaseRepo

RECENT = 5


@dataclass(frozen=True, slots=True)
class MemberView:
    member: Member
    tier: Tier | None
    referrer_code: str | None
    referrals: int
    active_coupons: int
    purchases: list[Purchase] = field(default_factory=list)
    surveys: list[SurveyResponse] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    open_tickets: int = 0
    messages: list[OutboxMessage] = field(default_factory=list)
    message_counts: dict[str, int] = field(default_factory=dict)
    # The customer-value model's latest prediction; None before its first fit.
    value: MemberValue | None = None
    # The shop's churn signal (care.value.signal): whether ``value.at_risk`` is what it goes by.
    churn_signal: str = GAP_RULE

    @property
    def interests(self) -> list[str]:
        return sorted(interest.category for interest in self.member.interests)

    def messages_with(self, *statuses: OutboxStatus) -> int:
        return sum(self.message_counts.get(status, 0) for status in statuses)


async def build_member_view(
    session: AsyncSession, clock: Clock, member_id: int, *, recent: int = RECENT
) -> MemberView | None:
    """Everything about one member for staff; None if unknown or their data was deleted."""
    members = MemberRepo(session)
    member = await members.get(member_id)
    if member is None or member.status == MemberStatus.DELETED:
        return None
    await members.load_interests(member)
    history = MemberHistoryRepo(session)
    tiers = await list_tiers(session)
    return MemberView(
        member=member,
        tier=next((tier for tier in tiers if tier.code == member.tier_code), None),
        referrer_code=(
            await history.member_code(member.referrer_id) if member.referrer_id else None
        ),
        referrals=await history.referral_count(member.id),
        active_coupons=await history.active_coupon_count(member.id, clock.now()),
        purchases=await PurchaseRepo(session).recent_for_member(member.id, recent),
        surveys=await history.survey_responses(member.id, recent),
        tickets=await history.tickets(member.id, recent),
        open_tickets=await history.unclosed_ticket_count(member.id),
        messages=await history.outbox_messages(member.id, recent),
        message_counts=await history.outbox_counts(member.id),
        value=await session.get(MemberValue, member.id),
        churn_signal=await current_signal(session),
    )


async def open_member_view(
    session: AsyncSession,
    clock: Clock,
    *,
    member_id: int,
    actor_telegram_id: int,
    actor_role: str,
) -> MemberView | None:
    """The 360° view, with an audit entry saying who looked at whom."""
    view = await build_member_view(session, clock, member_id)
    if view is not None:
        await audit(
            session,
            clock,
            actor_telegram_id=actor_telegram_id,
            actor_role=actor_role,
            action="member.view",
            target=f"member:{member_id}",
        )
    return view


async def search_members(
    session: AsyncSession,
    clock: Clock,
    query: str,
    *,
    limit: int,
    actor_telegram_id: int,
    actor_role: str,
) -> list[Member]:
    """``find_members`` for staff; a list of several members (names, codes) is audited, by the
    ids of the members listed (never the query text)."""
    found = await find_members(session, query, limit=limit)
    if len(found) > 1:
        await audit(
            session,
            clock,
            actor_telegram_id=actor_telegram_id,
            actor_role=actor_role,
            action="member.search",
            # Whom staff saw, not what they typed: a typed name is personal data erasure
            # could never find again.
            details={"matches": len(found), "member_ids": [member.id for member in found]},
        )
    return found
