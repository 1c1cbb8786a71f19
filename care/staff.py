"""Who is staff, and with which role. Owners are configured; admins and cashiers are rows."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from care.config import CareConfig
from storage.enums import StaffRole
from storage.repos.staff import StaffRepo


async def role_of(session: AsyncSession, config: CareConfig, telegram_id: int) -> StaffRole | None:
    """The staff role of a Telegram user, or None for everyone else."""
    if config.is_owner(telegram_id):
        return StaffRole.OWNER
    staff = await StaffRepo(session).by_telegram_id(telegram_id)
    return StaffRole(staff.role) if staff else None


def allows(role: StaffRole | None, minimum: StaffRole) -> bool:
    return role is not None and role.rank >= minimum.rank
