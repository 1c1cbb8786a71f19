"""The staff inbox: open tickets page by page, one thread, answers, closing, low-score follow-ups.

Ticket mechanics (recording, sending through the outbox, the rating invitation) belong to
``care.conversations.tickets`` and ``care.conversations.surveys``; this module pages and joins for
staff, and audits every
change a staff member makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.surveys import mark_followed_up
from care.conversations.tickets import (
    close_ticket,
    count_open_tickets,
    get_ticket,
    open_tickets,
    staff_reply,
)
from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from storage.models import Member, SurveyResponse, Ticket
from storage.repos.followups import FollowUpRepo
from storage.repos.members import MemberRepo
from storage.repos.staff import StaffRepo

PAGE_SIZE = 5


@dataclass(frozen=True, slots=True)
class InboxPage:
    tickets: list[tuple[Ticket, Member | None]]
    total: int
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


def _clamp(page: int, total: int, size: int) -> tuple[int, int]:
    pages = max(1, math.ceil(total / size))
    return min(max(page, 0), pages - 1), pages


async def inbox_page(session: AsyncSession, page: int, size: int = PAGE_SIZE) -> InboxPage:
    """One page of tickets waiting for staff, oldest first, with their members."""
    total = await count_open_tickets(session)
    page, pages = _clamp(page, total, size)
    tickets = await open_tickets(session, limit=size, offset=page * size)
    members = MemberRepo(session)
    return InboxPage(
        tickets=[(ticket, await members.get(ticket.member_id)) for ticket in tickets],
        total=total,
        page=page,
        pages=pages,
    )


async def ticket_thread(session: AsyncSession, ticket_id: int) -> Thread | None:
    """One ticket with its whole thread, its member and the names of staff who answered."""
    ticket = await get_ticket(session, ticket_id)
    if ticket is None:
        return None
    staff = StaffRepo(session)
    names: dict[int, str] = {}
    for message in ticket.messages:
        staff_id = message.staff_telegram_id
        if staff_id is not None and staff_id not in names:
            row = await staff.by_telegram_id(staff_id)
            names[staff_id] = row.name if row is not None and row.name else str(staff_id)
    return Thread(ticket, await MemberRepo(session).get(ticket.member_id), names)


async def answer_ticket(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    ticket_id: int,
    text: str,
    staff_telegram_id: int,
    staff_role: str,
) -> Ticket:
    """Send a staff answer to the shopper (through the outbox); audited.

    Raises ``care.conversations.tickets.TicketError`` as ``staff_reply`` does.
    """
    ticket = await staff_reply(
        session, clock, config, ticket_id=ticket_id, staff_telegram_id=staff_telegram_id, text=text
    )
    await audit(
        session,
        clock,
        actor_telegram_id=staff_telegram_id,
        actor_role=staff_role,
        action="ticket.reply",
        target=f"ticket:{ticket_id}",
        details={"length": len(text)},
    )
    return ticket


async def close_ticket_by_staff(
    session: AsyncSession,
    clock: Clock,
    config: CareConfig,
    *,
    ticket_id: int,
    staff_telegram_id: int,
    staff_role: str,
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
