"""Staff access: the role is resolved once per update and checked by every staff handler.

A non-staff user must learn nothing: staff handlers simply do not match for them, so their
command falls through to the fallback router and gets the same answer as any unknown command.
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import TelegramObject, User
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.config import CareConfig
from care.staff.roles import allows, role_of
from storage.enums import StaffRole


class MinRole(Filter):
    """Passes when the sender's staff role is at least ``minimum``; adds ``staff_role``."""

    def __init__(self, minimum: StaffRole = StaffRole.CASHIER) -> None:
        self.minimum = minimum

    async def __call__(
        self,
        event: TelegramObject,
        session: AsyncSession,
        config: CareConfig,
        event_from_user: User | None = None,
        staff_role: StaffRole | None = None,
        staff_role_known: bool = False,
    ) -> bool | dict[str, Any]:
        if event_from_user is None:
            return False
        # The member middleware (or the router-wide filter) already knows the role; only a
        # dispatcher without that middleware asks the database.
        if staff_role_known:
            role = staff_role
        else:
            role = await role_of(session, config, event_from_user.id)
        if not allows(role, self.minimum):
            return False
        return {"staff_role": role, "staff_role_known": True}
