"""The last router: whatever nobody else handled gets a short, polite answer."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message

from care.core.i18n import Translator


async def on_unknown_message(message: Message, t: Translator) -> None:
    await message.answer(t("common.unknown_command"))


async def on_unknown_callback(callback: CallbackQuery, t: Translator) -> None:
    await callback.answer(t("common.unknown_command"))


def build_router() -> Router:
    router = Router(name="fallback")
    router.message.register(on_unknown_message, F.chat.type == ChatType.PRIVATE)
    router.callback_query.register(on_unknown_callback)
    return router
