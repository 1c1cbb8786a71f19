"""A member's own data: everything we keep about them, and erasing it on request.

Deletion keeps the shop's numbers true without keeping the person: the member row stays as an
anonymous shell (status ``deleted``, every personal field NULL) so that survey scores, care-rule
results and counts still add up; purchases stay as anonymous aggregates with ``member_id`` NULL;
everything personal or free-form is removed. The Telegram user becomes a stranger again and can
register later as a new member with a new code.

Where copies of a person hide, and how erasure finds each one (new copies must be findable the
same way, never by searching text):

- their own rows (consent, interests, coupons, points, unanswered invitations): ``member_id``;
- messages to them: outbox ``member_id`` or their chat id; messages *about* them to someone else
  (staff alerts quoting their name and words): outbox ``about_member_id``;
- what they wrote: ticket messages of their tickets (staff answers in those threads quote them,
  so both go), survey comments: by ticket / ``member_id``;
- conversation state keyed by their Telegram id: the FSM rows in the database, and wherever else
  the bot keeps it (Redis with several replicas), through the storage's ``forget_user``;
- the audit log: entries about them are targeted ``member:<id>``; their details are dropped, and
  entries never quote personal values in the first place (a staff search records whom it found,
  not what was typed);
- the member code printed on their card: replaced by a fresh random one, so the anonymous row
  cannot be joined back to the card, a receipt or an old export.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.audit import audit
from care.core.clock import Clock
from care.members.membership import unique_member_code
from care.members.registration import count_referrals
from storage.enums import MemberStatus
from storage.models import (
    AuditEntry,
    ConsentEvent,
    Coupon,
    Member,
    MemberInterest,
    OutboxMessage,
    PointsEntry,
    Purchase,
    SurveyInvitation,
    SurveyResponse,
    Ticket,
    TicketMessage,
    Tier,
)
from storage.repos.fsm import FsmRepo
from storage.repos.members import MemberRepo


@runtime_checkable
class ConversationStates(Protocol):
    """Where the bot keeps conversation state, able to forget one person in all of it."""

    async def forget_user(self, telegram_id: int) -> None: ...


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


async def _count(session: AsyncSession, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def export_member_data(session: AsyncSession, member: Member) -> dict[str, Any]:
    """Everything stored about ``member``, as a JSON-ready document (the member's own copy)."""
    tier = await session.get(Tier, member.tier_code)
    interests = await MemberRepo(session).load_interests(member)
    events = await session.scalars(
        select(ConsentEvent).where(ConsentEvent.member_id == member.id).order_by(ConsentEvent.id)
    )
    coupons = await session.scalars(
        select(Coupon).where(Coupon.member_id == member.id).order_by(Coupon.issued_at.desc())
    )
    referrer_code = None
    if member.referrer_id is not None:
        referrer_code = await session.scalar(
            select(Member.member_code).where(Member.id == member.referrer_id)
        )
    return {
        "profile": {
            "member_code": member.member_code,
            "status": member.status,
            "name": member.name,
            "phone": member.phone,
            "birthday": _iso(member.birthday),
            "telegram_id": member.telegram_id,
            "username": member.username,
            "language": member.locale,
            "timezone": member.timezone,
            "interests": sorted(interest.category for interest in interests),
            "joined_at": _iso(member.registered_at or member.created_at),
            "source": member.source,
            "invited_by": referrer_code,
            "friends_invited": await count_referrals(session, member.id),
        },
        "consent": {
            "profile_at": _iso(member.profile_consent_at),
            "offers": member.marketing_opt_in,
            "offers_changed_at": _iso(member.marketing_changed_at),
            "surveys": member.surveys_opt_in,
            "surveys_changed_at": _iso(member.surveys_changed_at),
            "events": [
                {"kind": e.kind, "granted": e.granted, "source": e.source, "at": _iso(e.at)}
                for e in events
            ],
        },
        "loyalty": {
            "tier": member.tier_code,
            "tier_name_en": tier.name_en if tier else None,
            "tier_name_zh": tier.name_zh if tier else None,
            "points": member.points_balance,
            "purchases": await _count(session, Purchase, Purchase.member_id == member.id),
            "total_spent_minor": member.total_spent_minor,
            "first_purchase_at": _iso(member.first_purchase_at),
            "last_purchase_at": _iso(member.last_purchase_at),
            "points_entries": await _count(
                session, PointsEntry, PointsEntry.member_id == member.id
            ),
        },
        "coupons": [
            {
                "code": coupon.code,
                "offer": coupon.offer.title,
                "issued_at": _iso(coupon.issued_at),
                "expires_at": _iso(coupon.expires_at),
                "redeemed_at": _iso(coupon.redeemed_at),
            }
            for coupon in coupons
        ],
        "feedback": {
            "tickets": await _count(session, Ticket, Ticket.member_id == member.id),
            "surveys_answered": await _count(
                session, SurveyResponse, SurveyResponse.member_id == member.id
            ),
        },
        "reachable": member.blocked_at is None,
    }


async def delete_member_data(
    session: AsyncSession,
    clock: Clock,
    member: Member,
    *,
    states: ConversationStates | None = None,
) -> None:
    """Erase a member on their request (see the module docstring for what stays, anonymously).

    ``states``: the bot's conversation state when it lives outside the database (Redis). It is
    erased before the transaction commits: if the commit then fails, the person only lost a
    half-finished conversation and can ask again; the other way round would leave their words
    behind after telling them everything was deleted.
    """
    now = clock.now()
    member_id, telegram_id = member.id, member.telegram_id

    # Conversations stay for the shop's records; what was said and sent in them does not
    # (texts, attachments' file ids, album ids — staff answers included).
    ticket_ids = select(Ticket.id).where(Ticket.member_id == member_id).scalar_subquery()
    await session.execute(
        update(TicketMessage)
        .where(TicketMessage.ticket_id.in_(ticket_ids))
        .values(text=None, file_id=None, media_group_id=None)
    )
    await session.execute(
        update(SurveyResponse).where(SurveyResponse.member_id == member_id).values(comment=None)
    )
    await session.execute(
        update(Purchase).where(Purchase.member_id == member_id).values(member_id=None)
    )
    for model in (MemberInterest, ConsentEvent, Coupon, PointsEntry):
        await session.execute(delete(model).where(model.member_id == member_id))
    # Unanswered invitations would only ever lead to a message to nobody.
    await session.execute(
        delete(SurveyInvitation).where(
            SurveyInvitation.member_id == member_id, SurveyInvitation.answered_at.is_(None)
        )
    )
    outbox_filter = [
        OutboxMessage.member_id == member_id,
        OutboxMessage.about_member_id == member_id,
    ]
    if telegram_id is not None:
        outbox_filter.append(OutboxMessage.chat_id == telegram_id)
    await session.execute(delete(OutboxMessage).where(or_(*outbox_filter)))
    # Staff actions on this member stay on record; what they saw of the person does not. Older
    # entries named the member by card code: they now point at the anonymous row instead.
    await session.execute(
        update(AuditEntry)
        .where(AuditEntry.target.in_((f"member:{member_id}", member.member_code)))
        .values(target=f"member:{member_id}", details=None)
    )
    if telegram_id is not None:
        await FsmRepo(session).delete_for_user(telegram_id)
        if states is not None:
            await states.forget_user(telegram_id)

    member.member_code = await unique_member_code(MemberRepo(session))
    member.telegram_id = None
    member.chat_id = None
    member.username = None
    member.name = None
    member.phone = None
    member.birthday = None
    member.birthday_md = None
    member.birthday_locked = False
    member.referrer_id = None
    member.source = None
    member.profile_consent_at = None
    member.marketing_opt_in = False
    member.marketing_changed_at = now
    member.surveys_opt_in = False
    member.surveys_changed_at = now
    member.points_balance = 0
    member.status = MemberStatus.DELETED
    member.deleted_at = now
    member.updated_at = now
    session.expire(member, ["interests"])
    await audit(
        session,
        clock,
        actor_telegram_id=None,
        actor_role="member",
        action="member.delete",
        target=f"member:{member_id}",
    )
    await session.flush()
