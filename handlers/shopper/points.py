"""/points and the menu's points button: the balance and the latest ledger movements."""

from __future__ import annotations

from functools import cache

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import Message, TelegramObject, Update
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.formatting import format_count, format_day
from care.core.i18n import Translator, labels
from care.loyalty.points import points_history, reason_label
from handlers.shopper.menu import Registered
from handlers.shopper.offers import local_time
from storage.models import Member, PointsEntry

HISTORY_LENGTH = 10


def entry_line(t: Translator, entry: PointsEntry, timezone: str) -> str:
    values = {
        "date": format_day(local_time(entry.created_at, timezone), t.locale),
        "delta": f"{entry.delta:+,}",
        "reason": reason_label(entry.reason, t),
    }
    if entry.note:
        return t("points.entry_note", note=entry.note, **values)
    return t("points.entry", **values)


async def cmd_points(
    message: Message, session: AsyncSession, member: Member, t: Translator
) -> None:
    entries = await points_history(session, member.id, limit=HISTORY_LENGTH)
    lines = [t("points.summary", balance=format_count(member.points_balance)), ""]
    if entries:
        lines.append(t("points.history"))
        lines.extend(entry_line(t, entry, member.timezone) for entry in entries)
    else:
        lines.append(t("points.no_history"))
    await message.answer("\n".join(lines))


@cache
def _points_labels() -> frozenset[str]:
    return labels("menu.points")


def history_wanted(event: TelegramObject) -> int:
    """How many ledger entries the update's member SELECT is to bring along: the history's
    length for what looks like /points or the menu's points button, so ``cmd_points`` makes no
    query of its own; none for anything else. A wrong guess costs a query or a few rows."""
    message = event.message if isinstance(event, Update) else None
    text = message.text if message is not None else None
    if not text:
        return 0
    words = text.split(maxsplit=1)  # empty for a text of only spaces or line breaks
    if text in _points_labels() or (words and words[0].split("@", 1)[0] == "/points"):
        return HISTORY_LENGTH
    return 0


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(Registered())
    router.message.register(cmd_points, Command("points"))
    router.message.register(cmd_points, F.text.in_(labels("menu.points")))
    return router
