"""Staff rows (admins and cashiers; owners come from configuration) and their version number.

Every change to the staff rows goes through this repository, which bumps ``staff_version`` in
the same unit of work: processes that keep the roles in memory compare that number instead of
asking for the roles on every update.
"""

from __future__ import annotations

from sqlalchemy import ScalarSelect, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Staff, StaffVersion
from storage.repos.upsert import insert_ignoring_conflicts

VERSION_ROW = 1
OWNER_ROLE = "owner"  # an owner's profile row: configured owners only, never a grant


def staff_version_query() -> ScalarSelect[int]:
    """The current staff version as a scalar subquery (0 before the first change)."""
    return select(StaffVersion.version).where(StaffVersion.id == VERSION_ROW).scalar_subquery()


class StaffRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_telegram_id(self, telegram_id: int) -> Staff | None:
        return await self.session.scalar(select(Staff).where(Staff.telegram_id == telegram_id))

    async def by_telegram_ids(self, telegram_ids: list[int]) -> list[Staff]:
        return list(
            await self.session.scalars(select(Staff).where(Staff.telegram_id.in_(telegram_ids)))
        )

    async def by_username(self, username: str) -> Staff | None:
        """The staff row with this @username (Telegram usernames ignore case)."""
        return await self.session.scalar(
            select(Staff).where(func.lower(Staff.username) == username.lower()).limit(1)
        )

    async def all(self) -> list[Staff]:
        return list(await self.session.scalars(select(Staff).order_by(Staff.created_at)))

    async def roles(self) -> dict[int, str]:
        """Every staff member's role by Telegram id (the table is small: a shop's staff).

        Owners' profile rows grant nothing (owners are configured), so they are left out.
        """
        rows = await self.session.execute(
            select(Staff.telegram_id, Staff.role).where(Staff.role != OWNER_ROLE)
        )
        return {telegram_id: role for telegram_id, role in rows}

    async def version(self) -> int:
        found = await self.session.scalar(
            select(StaffVersion.version).where(StaffVersion.id == VERSION_ROW)
        )
        return int(found or 0)

    async def add(self, staff: Staff) -> Staff:
        self.session.add(staff)
        await self.session.flush()
        await self._bump_version()
        return staff

    async def change_role(self, staff: Staff, role: str) -> None:
        staff.role = role
        await self.session.flush()
        await self._bump_version()

    async def remove(self, telegram_id: int) -> bool:
        result = await self.session.execute(delete(Staff).where(Staff.telegram_id == telegram_id))
        removed = bool(result.rowcount)  # type: ignore[attr-defined]
        if removed:
            await self._bump_version()
        return removed

    async def _bump_version(self) -> None:
        # The row is made by the migration; a schema built from the models gets it here.
        result = await self.session.execute(
            update(StaffVersion)
            .where(StaffVersion.id == VERSION_ROW)
            .values(version=StaffVersion.version + 1)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            return
        statement = insert_ignoring_conflicts(self.session, StaffVersion, ["id"])
        if statement is None:
            self.session.add(StaffVersion(id=VERSION_ROW, version=0))
            await self.session.flush()
        else:
            await self.session.execute(statement.values(id=VERSION_ROW, version=0))
        await self._bump_version()
