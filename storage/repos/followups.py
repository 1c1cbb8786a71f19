"""Low survey scores still waiting for a human follow-up, oldest first."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import MemberStatus
from storage.models import Member, SurveyResponse


def _pending() -> tuple[ColumnElement[bool], ...]:
    # A member who erased their data cannot be written to: their low scores wait for no one.
    return (
        SurveyResponse.needs_followup.is_(True),
        SurveyResponse.followed_up_at.is_(None),
        Member.status != MemberStatus.DELETED,
    )


class FollowUpRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(self, *, limit: int, offset: int) -> list[tuple[SurveyResponse, Member]]:
        rows = await self.session.execute(
            select(SurveyResponse, Member)
            .join(Member, Member.id == SurveyResponse.member_id)
            .where(*_pending())
            .order_by(SurveyResponse.created_at, SurveyResponse.id)
            .limit(limit)
            .offset(offset)
        )
        return [(response, member) for response, member in rows.all()]

    async def get(self, response_id: int) -> SurveyResponse | None:
        return await self.session.get(SurveyResponse, response_id)

    async def count(self) -> int:
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(SurveyResponse)
                .join(Member, Member.id == SurveyResponse.member_id)
                .where(*_pending())
            )
            or 0
        )
