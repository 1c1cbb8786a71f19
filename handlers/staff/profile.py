"""/birthday: staff correct a member's birthday (members can set it only once themselves)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from care.console.member_admin import change_birthday
from care.core.formatting import format_day
from care.core.i18n import Translator
from care.loyalty.till import TillInputError
from care.members.registration import InputProblem
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt
from storage.enums import StaffRole


async def cmd_birthday(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t = staff.t
    words = (command.args or "").split()
    if len(words) != 2:
        await message.answer(t("profile_admin.usage"))
        return
    try:
        member, previous = await change_birthday(
            staff.session,
            staff.clock,
            member_query=words[0],
            birthday_text=words[1],
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
        )
    except TillInputError as problem:
        await message.answer(t("profile_admin.unknown_member", query=excerpt(problem.value, 40)))
        return
    except InputProblem:
        await message.answer(t("profile_admin.bad_date", value=excerpt(words[1], 20)))
        return
    assert member.birthday is not None
    await message.answer(
        t(
            "profile_admin.done",
            code=member.member_code,
            name=member.name or "—",
            birthday=format_day(member.birthday, t.locale, with_year=True),
            previous=format_day(previous, t.locale, with_year=True) if previous else "—",
        )
    )


async def refuse_cashier(message: Message, t: Translator) -> None:
    await message.answer(t("profile_admin.admin_only"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_birthday, Command("birthday"), MinRole(StaffRole.ADMIN))
    router.message.register(refuse_cashier, Command("birthday"))
    return router
