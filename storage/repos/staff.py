"""Staff rows (admins and cashiers; owners come from configuration)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Staff


class StaffRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_telegram_id(self, telegram_id: int) -> Staff | None:
        return await self.session.scalar(select(Staff).where(Staff.telegram_id == telegram_id))

    async def all(self) -> list[Staff]:
        return list(await self.session.scalars(select(Staff).order_by(Staff.created_at)))

    async def add(self, staff: Staff) -> Staff:
        self.session.add(staff)
        await self.session.flush()
        return staff

    async def remove(self, telegram_id: int) -> bool:
        result = await self.session.execute(delete(Staff).where(Staff.telegram_id == telegram_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]
