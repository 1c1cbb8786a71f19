"""Feedback tickets and their threads."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.enums import MemberStatus, TicketStatus
from storage.models import Member, Ticket, TicketMessage

# A ticket waits for staff while it is open or answered; only closing ends it.
UNCLOSED = (TicketStatus.OPEN.value, TicketStatus.ANSWERED.value)


def waits_for_shop() -> ColumnElement[bool]:
    """The shop owes the next answer: open, and its member can still be answered (a member who
    erased their data keeps the conversation on record, but nobody can write to them)."""
    erased = exists().where(Member.id == Ticket.member_id, Member.status == MemberStatus.DELETED)
    return and_(Ticket.status == TicketStatus.OPEN.value, ~erased)


class TicketRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, ticket_id: int, *, with_messages: bool = False) -> Ticket | None:
        query = select(Ticket).where(Ticket.id == ticket_id)
        if with_messages:
            # populate_existing: a ticket already in the session gets its thread loaded too.
            query = query.options(selectinload(Ticket.messages)).execution_options(
                populate_existing=True
            )
        return await self.session.scalar(query)

    async def add(self, ticket: Ticket) -> Ticket:
        self.session.add(ticket)
        await self.session.flush()
        return ticket

    async def add_message(self, message: TicketMessage) -> TicketMessage:
        self.session.add(message)
        await self.session.flush()
        return message

    async def first_message_id(self, ticket_id: int) -> int | None:
        return await self.session.scalar(
            select(func.min(TicketMessage.id)).where(TicketMessage.ticket_id == ticket_id)
        )

    async def album_seen_before(self, ticket_id: int, group_id: str, before_id: int) -> bool:
        """Whether an earlier message of this ticket belongs to the same album."""
        found = await self.session.scalar(
            select(TicketMessage.id)
            .where(
                TicketMessage.ticket_id == ticket_id,
                TicketMessage.media_group_id == group_id,
                TicketMessage.id < before_id,
            )
            .limit(1)
        )
        return found is not None

    async def latest_unclosed_for_member(self, member_id: int) -> Ticket | None:
        return await self.session.scalar(
            select(Ticket)
            .where(Ticket.member_id == member_id, Ticket.status.in_(UNCLOSED))
            .order_by(Ticket.id.desc())
            .limit(1)
        )

    async def unclosed_page(self, *, limit: int, offset: int) -> list[Ticket]:
        """Tickets not closed, with their threads: those waiting for the shop first (longest
        waiting first), then those waiting for the shopper (least recently touched first)."""
        waiting_first = case((waits_for_shop(), 0), else_=1)
        return list(
            await self.session.scalars(
                select(Ticket)
                .where(Ticket.status.in_(UNCLOSED))
                .order_by(
                    waiting_first,
                    func.coalesce(Ticket.waiting_since, Ticket.updated_at),
                    Ticket.id,
                )
                .limit(limit)
                .offset(offset)
                .options(selectinload(Ticket.messages))
            )
        )

    async def count_unclosed(self) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.status.in_(UNCLOSED))
            )
            or 0
        )
