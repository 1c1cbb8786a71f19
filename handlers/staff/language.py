"""/lang: a staff member chooses the language of their staff texts and alerts.

Their choice is stored on their staff row (``care.staff.profiles``) and wins over every guess;
their language as a shopper (the member's setting) is left as it is.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from care.core.formatting import language_name
from care.core.i18n import LOCALES, Translator, translator
from care.staff.profiles import SeenAs, set_staff_locale
from handlers.staff.context import StaffContext
from handlers.staff.keyboards import CDStaffLang, language_choice


def language_keyboard() -> InlineKeyboardMarkup:
    return language_choice(LOCALES, [language_name(locale) for locale in LOCALES])


async def _set(staff: StaffContext, locale: str) -> Translator:
    user = staff.user
    await set_staff_locale(
        staff.session,
        staff.config,
        staff.clock,
        SeenAs(user.id, user.full_name, user.username, user.language_code),
        staff.role,
        locale,
    )
    return translator(locale)


async def cmd_lang(message: Message, command: CommandObject, staff: StaffContext) -> None:
    wanted = (command.args or "").strip().lower()
    if wanted in LOCALES:
        t = await _set(staff, wanted)
        await message.answer(t("staff_language.lang_set"))
        return
    key = "staff_language.lang_unknown" if wanted else "staff_language.lang_prompt"
    await message.answer(staff.t(key), reply_markup=language_keyboard())


async def on_language(
    callback: CallbackQuery, callback_data: CDStaffLang, staff: StaffContext
) -> None:
    await callback.answer()
    if not isinstance(callback.message, Message):
        return
    if callback_data.locale not in LOCALES:
        await callback.message.answer(
            staff.t("staff_language.lang_prompt"), reply_markup=language_keyboard()
        )
        return
    t = await _set(staff, callback_data.locale)
    await callback.message.edit_text(t("staff_language.lang_set"), reply_markup=None)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(cmd_lang, Command("lang"))
    router.callback_query.register(on_language, CDStaffLang.filter())
    return router
