"""The staff inbox: conversations page by page (waiting for the shop first), each with the
member's one-line context; one thread; taking, answering (text or media), closing, reopening;
low-score follow-ups.

Ticket mechanics (recording, sending through the outbox, the rating invitation) belong to
``care.conversations.tickets`` and ``care.conversations.surveys``; this module pages and joins for
staff, and audits every change a staff member makes. A staff answer in a conversation that
follows up a low score marks the score followed up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.surveys import mark_followed_up
from care.conversations.tickets import (
    Media,
    assign_ticket,
    close_ticket,
    count_open_tickets,
    get_ticket,
    member_reachable,
    open_tickets,
    reopen_ticket,
    staff_reply,
)
from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import LOCALES, Translator, translator
from care.staff.profiles import staff_labels
from storage.enums import MemberStatus
from storage.models import Member, SurveyResponse, Ticket, Tier
from storage.repos.conversations import ConversationRepo
from storage.repos.followups import FollowUpRepo
from storage.repos.members import MemberRepo

PAGE_SIZE = 5


@dataclass(frozen=True, slots=True)
class MemberContext:
    """What staff should know before answering: tier, points, open complaints, last score."""

    tier: Tier | None
    points: int
    open_complaints: int
    last_score: tuple[str, int] | None  # (survey kind, score)


@dataclass(frozen=True, slots=True)
class InboxItem:
    ticket: Ticket
    member: Member | None
    context: MemberContext | None  # None: the member erased their data


@dataclass(frozen=True, slots=True)
class InboxPage:
    items: list[InboxItem]
    total: int
    waiting: int
    page: int
    pages: int


@dataclass(frozen=True, slots=True)
class FollowUpPage:
    responses: list[tuple[SurveyResponse, Member]]
    total: int
    page: int
    pages: int


@dataclass(frozen=True, slots=True)
class Thread:
    ticket: Ticket
    member: Member | None
    staff_names: dict[int, str]
    # False once the member erased their data: nothing can be sent to them any more.
    reachable: bool = True
    context: MemberContext | None = None
    # The low score this conversation follows up (care.conversations.followups), if any.
    followup: SurveyResponse | None = None


def _clamp(page: int, total: int, size: int) -> tuple[int, int]:
    pages = max(1, math.ceil(total / size))
    return min(max(page, 0), pages - 1), pages


async def member_context(session: AsyncSession, member: Member | None) -> MemberContext | None:
    """The member's one-line context for staff; None for an erased (or unknown) member."""
    if member is None or member.status == MemberStatus.DELETED:
        return None
    repo = ConversationRepo(session)
    return MemberContext(
        tier=await session.get(Tier, member.tier_code),
        points=member.points_balance,
        open_complaints=await repo.open_complaints(member.id),
        last_score=await repo.last_score(member.id),
    )


async def inbox_page(session: AsyncSession, page: int, size: int = PAGE_SIZE) -> InboxPage:
    """One page of open conversations, those waiting for the shop first, with their members."""
    total = await count_open_tickets(session)
    page, pages = _clamp(page, total, size)
    tickets = await open_tickets(session, limit=size, offset=page * size)
    members = MemberRepo(session)
    items = []
    for ticket in tickets:
        member = await members.get(ticket.member_id)
        items.append(InboxItem(ticket, member, await member_context(session, member)))
    return InboxPage(
        items=items,
        total=total,
        waiting=await ConversationRepo(session).count_waiting(),
        page=page,
        pages=pages,
    )


async def ticket_thread(
    session: AsyncSession, ticket_id: int, t: Translator | None = None
) -> Thread | None:
    """One ticket with its whole thread, its member and how to show the staff who answered or
    have it ("Li Lei (@lilei)", in ``t``'s language; the shop's first language without one)."""
    ticket = await get_ticket(session, ticket_id)
    if ticket is None:
        return None
    wanted = [m.staff_telegram_id for m in ticket.messages] + [ticket.assigned_to]
    names = await staff_labels(
        session, t or translator(LOCALES[0]), [i for i in wanted if i is not None]
    )
    member = await MemberRepo(session).get(ticket.member_id)
    return Thread(
        ticket,
        member,
        names,
        reachable=await member_reachable(session, ticket),
        context=await member_context(session, member),
        followup=(
            await FollowUpRepo(session).get(ticket.followup_of) if ticket.followup_of else None
        ),
    )


def _via(details: dict[str, Any] | None, via: str | None) -> dict[str, Any] | None:
    """An audit entry's details, saying where the action was taken (``forum``: in the staff
    group's topic) when not in the private /inbox."""
    if via is None:
        return details
    return {**(details or {}), "via": via}


async def take_ticket(
    session: AsyncSession,
    clock: Clock,
    *,
    ticket_id: int,
    staff_telegram_id: int,
    staff_role: str,
    via: str | None = None,
) -> int | None:
    """Assign the conversation to this staff member; returns who had it before. Audited.

    Raises ``TicketError("not_found")``.
    """
    _, previous = await assign_ticket(
        session, ticket_id=ticket_id, staff_telegram_id=staff_telegram_id
    )
    if previous != staff_telegram_id:
        await audit(
            session,
            clock,
            actor_telegram_id=staff_telegram_id,
            actor_role=staff_role,
            action="ticket.take",
            target=f"ticket:{ticket_id}",
            details=_via({"from": previous} if previous is not None else None, via),
        )
    return previous


async def reopen_ticket_by_staff(
    session: AsyncSession,
    clock: Clock,
    *,
    ticket_id: int,
    staff_telegram_id: int,
    staff_role: str,
    via: str | None = None,
) -> Ticket:
    """Reopen a closed conversation (see ``reopen_ticket`` for the refusals); audited."""
    ticket = await reopen_ticket(
        session, clock, ticket_id=ticket_id, staff_telegram_id=staff_telegram_id
    )
    await audit(
        session,
        clock,
        actor_telegram_id=staff_telegram_id,
        actor_role=staff_role,
        action="ticket.reopen",
        target=f"ticket:{ticket_id}",
        details=_via(None, via),
    )
    return ticket


async def answer_ticket(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    ticket_id: int,
    text: str | None,
    staff_telegram_id: int,
    staff_role: str,
    media: Media | None = None,
    saved_reply: str | None = None,
    via: str | None = None,
) -> Ticket:
    """Send a staff answer (text and/or an attachment) to the shopper through the outbox;
    audited (with the title of the saved reply it came from, if it did).

    Raises ``care.conversations.tickets.TicketError`` as ``staff_reply`` does.
    """
    ticket = await staff_reply(
        session,
        clock,
        config,
        ticket_id=ticket_id,
        staff_telegram_id=staff_telegram_id,
        text=text,
        media=media,
    )
    await audit(
        session,
        clock,
        actor_telegram_id=staff_telegram_id,
        actor_role=staff_role,
        action="ticket.reply",
        target=f"ticket:{ticket_id}",
        details=_via(
            {
                "length": len(text or ""),
                "media": media.kind if media else None,
                **({"saved_reply": saved_reply} if saved_reply else {}),
            },
            via,
        ),
    )
    if ticket.followup_of is not None:  # writing to a low scorer is following the score up
        response = await FollowUpRepo(session).get(ticket.followup_of)
        if response is not None and response.needs_followup:
            await mark_response_followed_up(
                session, clock, response_id=response.id, staff_telegram_id=staff_telegram_id,
                staff_role=staff_role,
            )  # fmt: skip
    return ticket


async def close_ticket_by_staff(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    ticket_id: int,
    staff_telegram_id: int,
    staff_role: str,
    via: str | None = None,
) -> tuple[Ticket, bool]:
    """Close a ticket; returns it and whether this call closed it (audited only then)."""
    before = await get_ticket(session, ticket_id)
    was_open = before is not None and before.closed_at is None
    ticket = await close_ticket(
        session, clock, config, ticket_id=ticket_id, staff_telegram_id=staff_telegram_id
    )
    if was_open:
        await audit(
            session,
            clock,
            actor_telegram_id=staff_telegram_id,
            actor_role=staff_role,
            action="ticket.close",
            target=f"ticket:{ticket_id}",
            details=_via(None, via),
        )
    return ticket, was_open


async def followup_page(session: AsyncSession, page: int, size: int = PAGE_SIZE) -> FollowUpPage:
    """Low scores still waiting for a human, oldest first, with their members."""
    repo = FollowUpRepo(session)
    total = await repo.count()
    page, pages = _clamp(page, total, size)
    return FollowUpPage(await repo.page(limit=size, offset=page * size), total, page, pages)


async def count_followups(session: AsyncSession) -> int:
    return await FollowUpRepo(session).count()


async def mark_response_followed_up(
    session: AsyncSession,
    clock: Clock,
    *,
    response_id: int,
    staff_telegram_id: int,
    staff_role: str,
) -> bool:
    """Record that staff followed a low score up; False if someone already had (no change).

    Audited when it changes something. Raises ``LookupError`` for an unknown response.
    """
    response = await FollowUpRepo(session).get(response_id)
    if response is None:
        raise LookupError(f"no survey response {response_id}")
    if response.followed_up_at is not None:
        return False
    await mark_followed_up(
        session, clock, response_id=response_id, staff_telegram_id=staff_telegram_id
    )
    await audit(
        session,
        clock,
        actor_telegram_id=staff_telegram_id,
        actor_role=staff_role,
        action="survey.followed_up",
        target=f"response:{response_id}",
    )
    return True
