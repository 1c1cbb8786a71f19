"""Staff roles kept in this process, valid for one version of the staff table.

A shopper's update must not pay a query to learn that the sender is not staff. The update's
member query brings the staff version along (``MemberRepo.for_update_context``); while it
matches the version these roles were read at, the roles are current. Every staff change bumps
the version in its own transaction (``StaffRepo``), so every replica reloads at its next update.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.config import CareConfig
from storage.enums import StaffRole
from storage.repos.staff import StaffRepo


class StaffDirectory:
    def __init__(self) -> None:
        self._version: int | None = None
        self._roles: dict[int, StaffRole] = {}

    async def role_of(
        self, session: AsyncSession, config: CareConfig, telegram_id: int, version: int
    ) -> StaffRole | None:
        """The role of ``telegram_id`` as of ``version`` (read in ``session`` when newer)."""
        if config.is_owner(telegram_id):
            return StaffRole.OWNER
        if version != self._version:
            # Read in the same transaction as ``version``: these roles are at least that fresh.
            roles = await StaffRepo(session).roles()
            self._roles = {telegram_id: StaffRole(role) for telegram_id, role in roles.items()}
            self._version = version
        return self._roles.get(telegram_id)
