"""Members: look-ups by every identity a member has, and creation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Member, MemberInterest
from storage.repos.staff import StaffRepo, staff_version_query


class MemberRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, member_id: int) -> Member | None:
        return await self.session.get(Member, member_id)

    async def by_telegram_id(self, telegram_id: int) -> Member | None:
        return await self.session.scalar(select(Member).where(Member.telegram_id == telegram_id))

    async def for_update_context(self, telegram_id: int) -> tuple[Member | None, int]:
        """The member behind an update and the staff version, in one SELECT for a member.

        Interests stay unloaded (``load_interests`` where they are used); the staff version
        tells the caller whether its in-process copy of the staff roles is still current.
        """
        version = func.coalesce(staff_version_query(), 0)
        row = (
            await self.session.execute(
                select(Member, version).where(Member.telegram_id == telegram_id)
            )
        ).first()
        if row is not None:
            return row[0], int(row[1])
        return None, await StaffRepo(self.session).version()

    async def load_interests(self, member: Member) -> list[MemberInterest]:
        """The member's interests, read now unless this session has them already."""
        if "interests" in inspect(member).unloaded:
            await self.session.refresh(member, ["interests"])
        return member.interests

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
