"""/start (with its deep links) and /help.

``/start`` meets three kinds of people: a stranger (a member row in status ``registering`` is
made at once, so a referral or source link is kept from the very first tap), someone half-way
through registering (they start again cleanly) and a member (they get the main menu).
Its replies wait for the update's commit (``reply_after_commit``): when the commit fails the
person hears one error, not a first question and then an error.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import Translator, labels
from care.members.membership import create_member
from care.members.registration import (
    LinkKind,
    ReferralOutcome,
    is_registered,
    parse_start_link,
    record_referral,
    record_source,
)
from handlers.content import sender_identity
from handlers.middlewares import reply_after_commit
from handlers.shopper import registration
from handlers.shopper.keyboards import main_menu
from storage.models import Member

# What a member who taps an invitation link is told (a new member is told nothing for a
# recorded referral: the welcome is enough).
REFERRAL_NOTES = {
    ReferralOutcome.SELF: "link.ref_self",
    ReferralOutcome.ALREADY: "link.ref_already",
    ReferralOutcome.TOO_LATE: "link.ref_member",
    ReferralOutcome.UNKNOWN: "link.ref_unknown",
}


async def cmd_start(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    session: AsyncSession,
    member: Member | None,
    t: Translator,
    config: CareConfig,
    clock: Clock,
    shop_name: str,
) -> None:
    user = message.from_user
    assert user is not None  # private chats always have a sender
    link = parse_start_link(command.args)
    if is_registered(member):
        assert member is not None
        await state.clear()
        if link.kind == LinkKind.REFERRAL:
            outcome = await record_referral(session, member, link.value)
            note = t(REFERRAL_NOTES.get(outcome, "link.ref_member"))
            reply_after_commit(lambda: message.answer(note))
        welcome = t("start.welcome_back", name=member.name or "", code=member.member_code)
        reply_after_commit(lambda: message.answer(welcome, reply_markup=main_menu(t)))
        return

    if member is None:
        member = await create_member(session, sender_identity(message), config, clock)
    if link.kind == LinkKind.SOURCE:
        record_source(member, link.value)
    elif link.kind == LinkKind.REFERRAL:
        outcome = await record_referral(session, member, link.value)
        if outcome != ReferralOutcome.RECORDED:
            note = t(REFERRAL_NOTES[outcome])
            reply_after_commit(lambda: message.answer(note))
    # The first question waits for the member row's commit: a failed commit is one error
    # message, not a question followed by an error.
    await registration.restart(state)
    name = member.name or ""
    reply_after_commit(lambda: registration.ask_language(message, t, name, shop_name))


async def cmd_help(message: Message, t: Translator) -> None:
    await message.answer(t("help.text"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_start, CommandStart())
    router.message.register(cmd_help, Command("help"))
    router.message.register(cmd_help, F.text.in_(labels("menu.help")))
    return router
