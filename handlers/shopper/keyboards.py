"""Keyboards and callback data shared by the shopper's flows (the main menu is used by all)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress

from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
)
from aiogram.utils.keyboard import InlineKeyboardBuilder

from care.core.formatting import LANGUAGE_NAMES, category_label
from care.core.i18n import LOCALES, Translator
from care.core.timezones import MAX_OFFSET_HOURS, MIN_OFFSET_HOURS, PICKER_CITIES

MENU_KEYS: tuple[tuple[str, ...], ...] = (
    ("menu.card", "menu.offers"),
    ("menu.points", "menu.rewards", "menu.feedback"),
    ("menu.invite", "menu.settings"),
    ("menu.help",),
)


async def drop_buttons(message: Message) -> None:
    """Take the buttons off a message once they were used.

    Best effort: Telegram refuses edits of messages older than 48 hours (a shopper coming back
    days later) and of messages already without buttons (a double tap); neither may fail the
    step the press just completed.
    """
    with suppress(TelegramBadRequest):
        await message.edit_reply_markup(reply_markup=None)


async def show(message: Message, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Turn ``message`` into this screen, or send it anew when Telegram won't edit the old one.

    A press on a days-old settings message still works: the screen just arrives as a new
    message. Pressing into the very screen already shown changes nothing.
    """
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as error:
        if "not modified" not in error.message:
            await message.answer(text, reply_markup=markup)


async def show_markup(message: Message, markup: InlineKeyboardMarkup) -> None:
    """New buttons on the same message (a ✓ toggled), or the whole message anew if too old."""
    try:
        await message.edit_reply_markup(reply_markup=markup)
    except TelegramBadRequest as error:
        if "not modified" not in error.message:
            await message.answer(message.html_text or "…", reply_markup=markup)


def main_menu(t: Translator) -> ReplyKeyboardMarkup:
    """The member's main menu: a persistent reply keyboard in the member's language."""
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=t.plain(key)) for key in row] for row in MENU_KEYS],
        resize_keyboard=True,
        is_persistent=True,
        input_field_placeholder=t.plain("menu.placeholder"),
    )


def share_contact_keyboard(t: Translator) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=t.plain("reg.phone_button"), request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def share_location_keyboard(t: Translator) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text=t.plain("tz.location_button"), request_location=True)],
            [KeyboardButton(text=t.plain("tz.cancel_button"))],
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def language_buttons(
    suggested: str, make_data: Callable[[str], CallbackData]
) -> InlineKeyboardMarkup:
    """中文 / English, the language of the shopper's Telegram app first."""
    order = sorted(LOCALES, key=lambda locale: locale != suggested)
    builder = InlineKeyboardBuilder()
    for locale in order:
        builder.button(text=LANGUAGE_NAMES[locale], callback_data=make_data(locale))
    builder.adjust(2)
    return builder.as_markup()


def interests_keyboard(
    t: Translator,
    categories: Sequence[str],
    selected: Sequence[str],
    toggle_data: Callable[[int], CallbackData],
    done_data: CallbackData,
) -> InlineKeyboardMarkup:
    """A multi-select of the shop's categories: a press toggles ✓, then Done."""
    builder = InlineKeyboardBuilder()
    for index, category in enumerate(categories):
        mark = "✓ " if category in selected else ""
        builder.button(
            text=f"{mark}{category_label(t, category)}", callback_data=toggle_data(index)
        )
    builder.adjust(2)
    builder.row(InlineKeyboardButton(text=t.plain("buttons.done"), callback_data=done_data.pack()))
    return builder.as_markup()


def city_keyboard(
    t: Translator,
    city_data: Callable[[int], CallbackData],
    offsets_data: CallbackData,
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for index, city in enumerate(PICKER_CITIES):
        builder.button(text=t.plain(f"tz.city.{city.key}"), callback_data=city_data(index))
    builder.adjust(3)
    builder.row(
        InlineKeyboardButton(text=t.plain("tz.by_offset"), callback_data=offsets_data.pack())
    )
    return builder.as_markup()


def offset_keyboard(offset_data: Callable[[int], CallbackData]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for hours in range(MIN_OFFSET_HOURS, MAX_OFFSET_HOURS + 1):
        builder.button(text=f"UTC{hours:+d}" if hours else "UTC", callback_data=offset_data(hours))
    builder.adjust(5)
    return builder.as_markup()
