"""What a staff handler works with, in one typed object: ``staff: StaffContext``.

The staff router's inner middleware builds it once the role filter has let the update in, from
the keyword data the outer middlewares and the dispatcher already provide (the update's
session, the shop's config and clock) plus the staff member and their role. It also keeps the
staff member's profile current (name, @username, language: ``care.staff.profiles``) and swaps
the update's translator for one in the staff member's own language, so every staff text, even
in a handler that takes only ``t``, reads in it: the member's language is for the shop's
messages to them as a shopper.
A handler then takes ``staff`` and the few aiogram objects it really uses, instead of a long
list of injected arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import Translator, translator
from care.staff.profiles import SeenAs, note_staff_seen
from handlers.middlewares import Handler
from storage.enums import StaffRole


@dataclass(frozen=True, slots=True)
class StaffContext:
    """The staff member behind this update, their role, and the shop's services for it."""

    session: AsyncSession
    config: CareConfig
    clock: Clock
    t: Translator
    user: User
    role: StaffRole

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def locale(self) -> str:
        return self.t.locale

    async def audit(
        self, action: str, target: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        """Record what this staff member just did, in the update's own unit of work."""
        await audit(
            self.session,
            self.clock,
            actor_telegram_id=self.user.id,
            actor_role=self.role,
            action=action,
            target=target,
            details=details,
        )


class StaffContextMiddleware(BaseMiddleware):
    """Adds ``staff`` to the handler data once a role filter has passed (inner middleware)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        role: StaffRole | None = data.get("staff_role")
        user: User | None = data.get("event_from_user")
        if role is not None and user is not None:
            config: CareConfig = data["config"]
            profile = await note_staff_seen(
                data["session"],
                config,
                data["clock"],
                SeenAs(user.id, user.full_name, user.username, user.language_code),
                role,
            )
            t = translator(profile.locale or config.default_locale)
            data["t"], data["locale"] = t, t.locale
            data["staff"] = StaffContext(
                session=data["session"],
                config=config,
                clock=data["clock"],
                t=t,
                user=user,
                role=role,
            )
        return await handler(event, data)
