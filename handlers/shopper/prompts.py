"""Prompts that never go stale: a flow's question with buttons loses them when the flow ends.

A flow that asks the shopper for something remembers the prompt's message id in its FSM data
(``remember_prompt``). ``PromptMiddleware`` looks at that id before and after every shopper
update: once the flow is left by any path — the answer arrived, Cancel, a menu button or a
command — and the id is gone from the data, the prompt's keyboard is taken off, so a Cancel
or a choice under a finished flow cannot be pressed any more. ``LeaveFlow`` is the one handler
that ends any waiting flow when a command or a menu button comes instead of an answer, and lets
that command or button do what it says.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from aiogram import BaseMiddleware, Bot, F
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Filter, or_f
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, TelegramObject

from handlers.middlewares import Handler
from handlers.shopper.menu import menu_labels

PROMPT_KEY = "live_prompt"


async def remember_prompt(state: FSMContext, message: Message | None) -> None:
    """Record ``message`` as the waiting flow's prompt (its buttons go when the flow ends)."""
    if isinstance(message, Message):
        await state.update_data({PROMPT_KEY: message.message_id})


def leaves_flow() -> Filter:
    """A command or a main-menu press: it ends a flow that waits for the shopper's input."""
    return or_f(F.text.startswith("/"), F.text.in_(menu_labels()))


async def on_leave_flow(message: Message, state: FSMContext) -> None:
    """A command or a menu press while a flow waits: end the flow, let the command run."""
    if await state.get_state() is not None:
        await state.clear()
    raise SkipHandler


class PromptMiddleware(BaseMiddleware):
    """Takes the keyboard off a flow's prompt once the flow has been left (outer middleware)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        state: FSMContext | None = data.get("state")
        # A prompt lives only while its flow's state does: without a state (most updates)
        # there is nothing to look up.
        if state is None or data.get("raw_state") is None:
            return await handler(event, data)
        before = (await state.get_data()).get(PROMPT_KEY)
        try:
            return await handler(event, data)
        finally:
            if before is not None:
                after = (await state.get_data()).get(PROMPT_KEY)
                if after != before:
                    await _drop_keyboard(event, data.get("bot"), int(before))


async def _drop_keyboard(event: TelegramObject, bot: Bot | None, message_id: int) -> None:
    if isinstance(event, CallbackQuery):
        chat = event.message.chat.id if event.message is not None else event.from_user.id
        if event.message is not None and event.message.message_id == message_id:
            return  # the press on the prompt itself redrew it already
    elif isinstance(event, Message):
        chat = event.chat.id
    else:
        return
    if bot is None:
        return
    # Best effort: a prompt older than 48 hours or already without buttons cannot be edited.
    with suppress(TelegramBadRequest):
        await bot.edit_message_reply_markup(chat_id=chat, message_id=message_id, reply_markup=None)
