"""Conversation figures staff see beside a member: open complaints, last score, waiting count."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import TicketKind
from storage.models import SurveyResponse, Ticket
from storage.repos.tickets import UNCLOSED, waits_for_shop


class ConversationRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_complaints(self, member_id: int) -> int:
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(
                    Ticket.member_id == member_id,
                    Ticket.kind == TicketKind.COMPLAINT.value,
                    Ticket.status.in_(UNCLOSED),
                )
            )
            or 0
        )

    async def last_score(self, member_id: int) -> tuple[str, int] | None:
        row = (
            await self.session.execute(
                select(SurveyResponse.kind, SurveyResponse.score)
                .where(SurveyResponse.member_id == member_id)
                .order_by(SurveyResponse.created_at.desc(), SurveyResponse.id.desc())
                .limit(1)
            )
        ).first()
        return (row[0], int(row[1])) if row is not None else None

    async def count_waiting(self) -> int:
        """Conversations where the shop owes the next answer."""
        return int(
            await self.session.scalar(
                select(func.count()).select_from(Ticket).where(waits_for_shop())
            )
            or 0
        )
