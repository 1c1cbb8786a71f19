"""/mydata shows everything stored about the shopper; /delete_me erases it after a confirmation."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiogram import Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message, ReplyKeyboardRemove
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.formatting import category_list, format_count, zone_label
from care.core.i18n import Translator
from care.members.privacy import ConversationStates, delete_member_data, export_member_data
from handlers.shopper.keyboards import LANGUAGE_NAMES, drop_buttons
from storage.models import Member


class CDDelete(CallbackData, prefix="jd"):
    confirm: bool


def _yes_no(t: Translator, value: bool) -> str:
    return t.plain("mydata.yes" if value else "mydata.no")


def _or_dash(value: Any) -> str:
    return "—" if value in (None, "", []) else str(value)


def _when(iso: str | None) -> str:
    """An ISO timestamp as ``2026-03-02 03:00`` (UTC, to the minute)."""
    return iso[:16].replace("T", " ") if iso else "—"


def mydata_text(t: Translator, data: dict[str, Any], now: datetime) -> str:
    profile, consent, loyalty = data["profile"], data["consent"], data["loyalty"]
    events = [
        t(
            "mydata.event",
            kind=t.plain(f"mydata.consent_{event['kind']}"),
            granted=_yes_no(t, event["granted"]),
            at=_when(event["at"]),
        )
        for event in consent["events"]
    ]
    return t(
        "mydata.text",
        code=profile["member_code"],
        name=_or_dash(profile["name"]),
        phone=_or_dash(profile["phone"]),
        birthday=_or_dash(profile["birthday"]),
        username=_or_dash(profile["username"]),
        language=LANGUAGE_NAMES.get(profile["language"], profile["language"]),
        timezone=zone_label(profile["timezone"], t.locale, now),
        interests=_or_dash(category_list(t, profile["interests"])),
        source=_or_dash(profile["source"]),
        invited_by=_or_dash(profile["invited_by"]),
        profile_at=_when(consent["profile_at"]),
        offers=_yes_no(t, consent["offers"]),
        surveys=_yes_no(t, consent["surveys"]),
        tier=loyalty["tier_name_zh"] if t.locale == "zh" else loyalty["tier_name_en"],
        points=format_count(loyalty["points"]),
        purchases=loyalty["purchases"],
        coupons=len(data["coupons"]),
        tickets=data["feedback"]["tickets"],
        surveys_answered=data["feedback"]["surveys_answered"],
    ) + ("\n" + "\n".join(events) if events else "")


async def cmd_mydata(
    message: Message,
    session: AsyncSession,
    member: Member | None,
    t: Translator,
    clock: Clock,
) -> None:
    if member is None:
        await message.answer(t("mydata.nothing"))
        return
    data = await export_member_data(session, member)
    await message.answer(mydata_text(t, data, clock.now()))
    document = json.dumps(data, ensure_ascii=False, indent=2).encode()
    await message.answer_document(
        BufferedInputFile(document, filename=f"mydata-{member.member_code}.json"),
        caption=t("mydata.json_caption"),
    )


async def cmd_delete_me(message: Message, member: Member | None, t: Translator) -> None:
    if member is None:
        await message.answer(t("mydata.nothing"))
        return
    builder = InlineKeyboardBuilder()
    builder.button(text=t.plain("delete.yes"), callback_data=CDDelete(confirm=True))
    builder.button(text=t.plain("delete.no"), callback_data=CDDelete(confirm=False))
    builder.adjust(1)
    await message.answer(t("delete.confirm"), reply_markup=builder.as_markup())


async def on_delete_answer(
    callback: CallbackQuery,
    callback_data: CDDelete,
    state: FSMContext,
    session: AsyncSession,
    member: Member | None,
    t: Translator,
    clock: Clock,
) -> None:
    if not isinstance(callback.message, Message):
        return
    await callback.answer()
    await drop_buttons(callback.message)
    if member is None:
        await callback.message.answer(t("mydata.nothing"))
        return
    if not callback_data.confirm:
        await callback.message.answer(t("delete.kept"))
        return
    await state.clear()
    # Redis keeps conversations apart from the database: the storage forgets the person there.
    states = state.storage if isinstance(state.storage, ConversationStates) else None
    await delete_member_data(session, clock, member, states=states)
    await callback.message.answer(t("delete.done"), reply_markup=ReplyKeyboardRemove())


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_mydata, Command("mydata"))
    router.message.register(cmd_delete_me, Command("delete_me"))
    router.callback_query.register(on_delete_answer, CDDelete.filter())
    return router
