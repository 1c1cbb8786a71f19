"""Members: look-ups by every identity a member has, and creation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Member


class MemberRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, member_id: int) -> Member | None:
        return await self.session.get(Member, member_id)

    async def by_telegram_id(self, telegram_id: int) -> Member | None:
        return await self.session.scalar(select(Member).where(Member.telegram_id == telegram_id))

    async def by_code(self, member_code: str) -> Member | None:
        return await self.session.scalar(
            select(Member).where(Member.member_code == member_code.upper())
        )

    async def code_taken(self, member_code: str) -> bool:
        found = await self.session.scalar(
            select(Member.id).where(Member.member_code == member_code)
        )
        return found is not None

    async def add(self, member: Member) -> Member:
        self.session.add(member)
        await self.session.flush()
        return member

    async def count_registered_since(self, since: datetime) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).select_from(Member).where(Member.registered_at >= since)
            )
            or 0
        )
