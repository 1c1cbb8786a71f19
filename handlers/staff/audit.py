"""/audit: the owner reads who did what, as sentences with names and amounts, a page at a time.

``/audit @username`` or ``/audit <user id>`` keeps one person's actions, ``/audit purchase``
(or any kind in ``care.console.audit_log.KINDS``) one kind; the buttons page and filter too.
"""

from __future__ import annotations

from contextlib import suppress

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from care.console.audit_log import (
    KINDS,
    AuditFilter,
    AuditPage,
    audit_page,
    find_actor,
    is_kind,
    kind_label,
)
from care.core.i18n import Translator
from care.staff.profiles import staff_labels
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt
from handlers.staff.keyboards import CDAudit
from storage.enums import StaffRole

KIND_BUTTONS_PER_ROW = 4


async def _render(
    staff: StaffContext, page: int, filter: AuditFilter
) -> tuple[str, InlineKeyboardMarkup]:
    t = staff.t
    result = await audit_page(staff.session, staff.config, t, page=page, filter=filter)
    described = await _describe_filter(staff, filter)
    if not result.lines:
        key = "staff_language.audit.empty_filtered" if described else "staff_language.audit.empty"
        text = t(key, filter=described)
    else:
        title = t(
            "staff_language.audit.title",
            filter=described,
            page=result.page + 1,
            pages=result.pages,
        )
        help_line = t("staff_language.audit.help", kinds=" · ".join(KINDS))
        text = "\n".join([title, *result.lines, "", help_line])
    return text, _keyboard(t, result)


async def _describe_filter(staff: StaffContext, filter: AuditFilter) -> str:
    t, parts = staff.t, []
    if filter.actor is not None:
        who = (await staff_labels(staff.session, t, [filter.actor]))[filter.actor]
        parts.append(t.plain("staff_language.audit.filter_actor", who=who))
    if filter.kind is not None:
        parts.append(t.plain("staff_language.audit.filter_kind", kind=kind_label(t, filter.kind)))
    return "".join(parts)


def _keyboard(t: Translator, result: AuditPage) -> InlineKeyboardMarkup:
    actor, kind = result.filter.actor or 0, result.filter.kind or ""
    rows: list[list[InlineKeyboardButton]] = []
    nav = []
    if result.page > 0:
        data = CDAudit(page=result.page - 1, actor=actor, kind=kind).pack()
        nav.append(
            InlineKeyboardButton(text=t.plain("staff_language.audit.prev"), callback_data=data)
        )
    if result.page + 1 < result.pages:
        data = CDAudit(page=result.page + 1, actor=actor, kind=kind).pack()
        nav.append(
            InlineKeyboardButton(text=t.plain("staff_language.audit.next"), callback_data=data)
        )
    if nav:
        rows.append(nav)
    choices = [("", t.plain("staff_language.audit.all"))] + [
        (each, kind_label(t, each)) for each in KINDS
    ]
    buttons = [
        InlineKeyboardButton(
            text=f"• {label}" if each == kind else label,
            callback_data=CDAudit(page=0, actor=actor, kind=each).pack(),
        )
        for each, label in choices
    ]
    rows += [
        buttons[i : i + KIND_BUTTONS_PER_ROW] for i in range(0, len(buttons), KIND_BUTTONS_PER_ROW)
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def cmd_audit(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t, actor, kind = staff.t, None, None
    for word in (command.args or "").split()[:2]:
        if is_kind(word.lower()):
            kind = word.lower()
            continue
        actor = await find_actor(staff.session, staff.config, word)
        if actor is None:
            await message.answer(
                t(
                    "staff_language.audit.unknown_person",
                    value=excerpt(word, 40),
                    kinds=" · ".join(KINDS),
                )
            )
            return
    text, keyboard = await _render(staff, 0, AuditFilter(actor=actor, kind=kind))
    await message.answer(text, reply_markup=keyboard)


async def on_audit_page(
    callback: CallbackQuery, callback_data: CDAudit, staff: StaffContext
) -> None:
    await callback.answer()
    kind = callback_data.kind if is_kind(callback_data.kind) else None
    filter = AuditFilter(actor=callback_data.actor or None, kind=kind)
    text, keyboard = await _render(staff, callback_data.page, filter)
    if isinstance(callback.message, Message):
        # Pressing the filter already shown changes nothing: Telegram refuses such an edit.
        with suppress(TelegramBadRequest):
            await callback.message.edit_text(text, reply_markup=keyboard)


async def refuse_audit(message: Message, t: Translator) -> None:
    await message.answer(t("roles.audit_owner_only"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(cmd_audit, Command("audit"), MinRole(StaffRole.OWNER))
    router.message.register(refuse_audit, Command("audit"))
    router.callback_query.register(on_audit_page, MinRole(StaffRole.OWNER), CDAudit.filter())
    return router
