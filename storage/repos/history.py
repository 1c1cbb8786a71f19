"""One member's history across tables, read for the staff's 360° view (small, indexed reads)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.enums import TicketStatus
from storage.models import Coupon, Member, OutboxMessage, SurveyResponse, Ticket


class MemberHistoryRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def survey_responses(self, member_id: int, limit: int) -> list[SurveyResponse]:
        return list(
            await self.session.scalars(
                select(SurveyResponse)
                .where(SurveyResponse.member_id == member_id)
                .order_by(SurveyResponse.created_at.desc(), SurveyResponse.id.desc())
                .limit(limit)
            )
        )

    async def tickets(self, member_id: int, limit: int) -> list[Ticket]:
        """The newest tickets first, each with its thread (for the opening line)."""
        return list(
            await self.session.scalars(
                select(Ticket)
                .where(Ticket.member_id == member_id)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                .limit(limit)
                .options(selectinload(Ticket.messages))
            )
        )

    async def unclosed_ticket_count(self, member_id: int) -> int:
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(Ticket.member_id == member_id, Ticket.status != TicketStatus.CLOSED)
            )
            or 0
        )

    async def outbox_messages(self, member_id: int, limit: int) -> list[OutboxMessage]:
        return list(
            await self.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.member_id == member_id)
                .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
                .limit(limit)
            )
        )

    async def outbox_counts(self, member_id: int) -> dict[str, int]:
        rows = await self.session.execute(
            select(OutboxMessage.status, func.count())
            .where(OutboxMessage.member_id == member_id)
            .group_by(OutboxMessage.status)
        )
        return {str(status): int(count) for status, count in rows.all()}

    async def active_coupon_count(self, member_id: int, now: datetime) -> int:
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(Coupon)
                .where(
                    Coupon.member_id == member_id,
                    Coupon.redeemed_at.is_(None),
                    (Coupon.expires_at.is_(None)) | (Coupon.expires_at > now),
                )
            )
            or 0
        )

    async def referral_count(self, member_id: int) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).select_from(Member).where(Member.referrer_id == member_id)
            )
            or 0
        )

    async def member_code(self, member_id: int) -> str | None:
        return await self.session.scalar(select(Member.member_code).where(Member.id == member_id))
