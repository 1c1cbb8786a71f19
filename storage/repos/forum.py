"""Tickets mirrored into a staff forum supergroup: one topic per ticket.

Every step is claimed with a conditional UPDATE first, so two bot replicas never create two
topics for one ticket nor post the same message twice.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import MemberStatus, MessageAuthor, TicketStatus
from storage.models import Member, Ticket, TicketMessage

# forum_topic_id while a topic is being created (real topic ids are positive).
CREATING = 0
# forum_synced_message_id once the topic was told that its member erased their data: nothing
# of theirs is copied any more.
ERASED = -1


class ForumRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def tickets_without_topic(self, limit: int) -> list[int]:
        return list(
            await self.session.scalars(
                select(Ticket.id)
                .where(Ticket.forum_topic_id.is_(None), Ticket.status != TicketStatus.CLOSED)
                .order_by(Ticket.id)
                .limit(limit)
            )
        )

    async def claim_topic(self, ticket_id: int) -> bool:
        result = await self.session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.forum_topic_id.is_(None))
            .values(forum_topic_id=CREATING)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def set_topic(self, ticket_id: int, topic_id: int | None) -> None:
        await self.session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id)
            .values(forum_topic_id=topic_id)
            .execution_options(synchronize_session=False)
        )

    async def unsynced_messages(self, limit: int) -> list[tuple[Ticket, TicketMessage, Member]]:
        """Member messages newer than what each topic shows, oldest first."""
        rows = await self.session.execute(
            select(Ticket, TicketMessage, Member)
            .join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
            .join(Member, Member.id == Ticket.member_id)
            .where(
                Ticket.forum_topic_id > CREATING,
                TicketMessage.author == MessageAuthor.MEMBER,
                Member.status != MemberStatus.DELETED,
                or_(
                    Ticket.forum_synced_message_id.is_(None),
                    TicketMessage.id > Ticket.forum_synced_message_id,
                ),
            )
            .order_by(TicketMessage.id)
            .limit(limit)
        )
        return [(ticket, message, member) for ticket, message, member in rows.all()]

    async def claim_message(self, ticket_id: int, previous: int | None, message_id: int) -> bool:
        """Move the ticket's sync mark from ``previous`` to ``message_id``, if still there."""
        unchanged = (
            Ticket.forum_synced_message_id.is_(None)
            if previous is None
            else Ticket.forum_synced_message_id == previous
        )
        result = await self.session.execute(
            update(Ticket)
            .where(and_(Ticket.id == ticket_id, unchanged))
            .values(forum_synced_message_id=message_id)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def erased_unannounced(self, limit: int) -> list[tuple[int, int, int | None]]:
        """(ticket, topic, sync mark) of open topics whose member erased their data and
        that have not been told so yet."""
        rows = await self.session.execute(
            select(Ticket.id, Ticket.forum_topic_id, Ticket.forum_synced_message_id)
            .join(Member, Member.id == Ticket.member_id)
            .where(
                Ticket.forum_topic_id > CREATING,
                Ticket.status != TicketStatus.CLOSED,
                Member.status == MemberStatus.DELETED,
                or_(
                    Ticket.forum_synced_message_id.is_(None),
                    Ticket.forum_synced_message_id != ERASED,
                ),
            )
            .order_by(Ticket.id)
            .limit(limit)
        )
        # forum_topic_id > CREATING: never NULL here.
        return [(ticket, topic or 0, mark) for ticket, topic, mark in rows.all()]

    async def ticket_for_topic(self, topic_id: int) -> Ticket | None:
        return await self.session.scalar(select(Ticket).where(Ticket.forum_topic_id == topic_id))
