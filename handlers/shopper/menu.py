"""/menu: the main menu keyboard, and the polite door for people who are not members yet."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, Filter, or_f
from aiogram.types import Message

from care.core.i18n import Translator, labels
from care.members.registration import is_registered
from handlers.shopper.keyboards import MENU_KEYS, main_menu
from storage.models import Member

MEMBER_COMMANDS = (
    "menu",
    "card",
    "offers",
    "points",
    "rewards",
    "feedback",
    "invite",
    "settings",
    "stop",
    "unsubscribe",
)


class Registered(Filter):
    """Passes for members who finished registering (and were not deleted)."""

    async def __call__(self, event: Any, member: Member | None = None) -> bool:
        return is_registered(member)


def menu_labels() -> frozenset[str]:
    return frozenset().union(*(labels(key) for row in MENU_KEYS for key in row))


async def cmd_menu(message: Message, t: Translator) -> None:
    await message.answer(t("menu.text"), reply_markup=main_menu(t))


async def on_not_registered(message: Message, t: Translator) -> None:
    await message.answer(t("common.not_registered"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_menu, Command("menu"), Registered())
    router.message.register(
        on_not_registered,
        or_f(Command(*MEMBER_COMMANDS), F.text.in_(menu_labels() - labels("menu.help"))),
        ~Registered(),
    )
    return router
