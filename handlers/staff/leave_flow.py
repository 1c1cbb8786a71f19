"""A staff member who sends a command or presses a menu button while a console step waits for
their input leaves that step: it is closed first, so the next plain text they type is not taken
as the answer (an inbox reply would otherwise go to a customer long after the staff member moved
on), and then the command or button does what it says. ``/cancel`` stays with each flow.
"""

from __future__ import annotations

from contextlib import suppress

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter, and_f, invert_f
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from handlers.shopper.prompts import PROMPT_KEY, leaves_flow
from handlers.staff.context import StaffContext
from handlers.staff.inbox import InboxReply


async def on_leave_step(message: Message, state: FSMContext, staff: StaffContext) -> None:
    waiting = await state.get_state()
    if waiting == InboxReply.album.state:  # the answer went out already: nothing was left
        await state.clear()
        raise SkipHandler
    data = await state.get_data()
    if waiting == InboxReply.text.state:
        note = staff.t("inbox.reply_left", number=int(data.get("reply_ticket_id") or 0))
    else:
        note = staff.t("roles.step_left")
    await state.clear()
    prompt = data.get(PROMPT_KEY)
    if prompt is not None and message.bot is not None:
        # The step's question loses its buttons: a Cancel under a step that is over misleads.
        with suppress(TelegramBadRequest):  # already without buttons, or too old to edit
            await message.bot.edit_message_reply_markup(
                chat_id=message.chat.id, message_id=int(prompt), reply_markup=None
            )
    await message.answer(note)
    raise SkipHandler


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(
        on_leave_step,
        StateFilter("*"),
        ~StateFilter(None),
        and_f(leaves_flow(), invert_f(Command("cancel"))),
    )
    return router
