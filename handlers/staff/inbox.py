"""/inbox: open feedback oldest first, a thread, answer (the next message), close; follow-ups."""

from __future__ import annotations

from datetime import datetime

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from care.conversations.inbox import (
    FollowUpPage,
    InboxPage,
    Thread,
    answer_ticket,
    close_ticket_by_staff,
    count_followups,
    followup_page,
    inbox_page,
    mark_response_followed_up,
    ticket_thread,
)
from care.conversations.tickets import MAX_TEXT_CHARS, TicketError
from care.core.config import CareConfig
from care.core.i18n import Translator
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt, score_text, short_time
from handlers.staff.forum import announce_closed
from handlers.staff.keyboards import CDFollowedUp, CDFollowUps, CDInboxPage, CDTicket, markup
from storage.enums import MessageAuthor, StaffRole, TicketStatus

THREAD_MESSAGES = 8
THREAD_TEXT_CHARS = 400
PHOTOS_SHOWN = 5


class InboxReply(StatesGroup):
    text = State()


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def _age(t: Translator, since: datetime, now: datetime) -> str:
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return t.plain("inbox.age_minutes", n=minutes)
    if minutes < 24 * 60:
        return t.plain("inbox.age_hours", n=minutes // 60)
    return t.plain("inbox.age_days", n=minutes // (24 * 60))


def _kind(t: Translator, kind: str) -> str:
    key = f"m360.ticket_kind.{kind}"
    return t.plain(key) if t.has(key) else kind


def render_inbox(
    page: InboxPage, followups: int, t: Translator, now: datetime
) -> tuple[str, InlineKeyboardMarkup]:
    keyboard: list[list[InlineKeyboardButton]] = []
    if not page.total:
        text = t("inbox.empty")
    else:
        text = t("inbox.title", count=page.total, page=page.page + 1, pages=page.pages)
        for ticket, member in page.tickets:
            label = t.plain(
                "inbox.line",
                number=ticket.id,
                kind=_kind(t, ticket.kind),
                name=excerpt(member.name if member and member.name else "?", 24),
                age=_age(t, ticket.created_at, now),
                answered=(
                    t.plain("inbox.answered_mark")
                    if ticket.status == TicketStatus.ANSWERED
                    else ""
                ),
            )
            data = CDTicket(action="open", ticket_id=ticket.id, page=page.page).pack()
            keyboard.append([_button(label, data)])
        nav = []
        if page.page > 0:
            nav.append(_button(t.plain("inbox.prev"), CDInboxPage(page=page.page - 1).pack()))
        if page.page + 1 < page.pages:
            nav.append(_button(t.plain("inbox.next"), CDInboxPage(page=page.page + 1).pack()))
        keyboard.append(nav)
    if followups:
        keyboard.append(
            [_button(t.plain("inbox.followups", count=followups), CDFollowUps(page=0).pack())]
        )
    keyboard.append([_button(t.plain("inbox.refresh"), CDInboxPage(page=page.page).pack())])
    return text, markup(keyboard)


def render_thread(
    thread: Thread, t: Translator, config: CareConfig, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    ticket, member = thread.ticket, thread.member
    lines = [
        t(
            "inbox.thread_title",
            number=ticket.id,
            kind=_kind(t, ticket.kind),
            status=t.plain(f"m360.ticket_status.{ticket.status}"),
            name=member.name if member and member.name else "?",
            code=member.member_code if member else "?",
            when=short_time(ticket.created_at, config),
        )
    ]
    messages = ticket.messages[-THREAD_MESSAGES:]
    hidden = len(ticket.messages) - len(messages)
    if hidden:
        lines.append(t("inbox.thread_more", messages=t.count("inbox.earlier", hidden)))
    for message in messages:
        body = excerpt(message.text, THREAD_TEXT_CHARS) if message.text else ""
        if message.photo_file_id:
            body = f"{t.plain('inbox.thread_photo')} {body}".strip()
        when = short_time(message.created_at, config)
        if message.author == MessageAuthor.STAFF:
            staff_id = message.staff_telegram_id
            staff = thread.staff_names.get(staff_id, "?") if staff_id is not None else "?"
            lines.append(t("inbox.thread_staff", when=when, staff=staff, text=body))
        else:
            lines.append(t("inbox.thread_member", when=when, text=body))
    keyboard: list[list[InlineKeyboardButton]] = []
    if ticket.status != TicketStatus.CLOSED:
        keyboard.append(
            [
                _button(
                    t.plain("inbox.reply"),
                    CDTicket(action="reply", ticket_id=ticket.id, page=page).pack(),
                ),
                _button(
                    t.plain("inbox.close"),
                    CDTicket(action="close", ticket_id=ticket.id, page=page).pack(),
                ),
            ]
        )
    photos = sum(1 for message in ticket.messages if message.photo_file_id)
    if photos:
        label = t.plain("inbox.photos", count=photos)
        data = CDTicket(action="photos", ticket_id=ticket.id, page=page).pack()
        keyboard.append([_button(label, data)])
    keyboard.append([_button(t.plain("inbox.back"), CDInboxPage(page=page).pack())])
    return "\n".join(lines), markup(keyboard)


def render_followups(
    page: FollowUpPage, t: Translator, config: CareConfig
) -> tuple[str, InlineKeyboardMarkup]:
    keyboard: list[list[InlineKeyboardButton]] = []
    if not page.total:
        lines = [t("inbox.followups_empty")]
    else:
        lines = [t("inbox.followups_title", count=page.total)]
        for response, member in page.responses:
            comment = f" · “{excerpt(response.comment, 80)}”" if response.comment else ""
            kind_key = f"m360.survey_kind.{response.kind}"
            lines.append(
                t(
                    "inbox.followup_line",
                    when=short_time(response.created_at, config),
                    kind=t.plain(kind_key) if t.has(kind_key) else response.kind,
                    score=score_text(t, response.score, response.kind),
                    name=member.name or "?",
                    code=member.member_code,
                    comment=comment,
                )
            )
            label = t.plain("inbox.followup_done", name=excerpt(member.name or "?", 24))
            keyboard.append([_button(label, CDFollowedUp(response_id=response.id).pack())])
        nav = []
        if page.page > 0:
            nav.append(_button(t.plain("inbox.prev"), CDFollowUps(page=page.page - 1).pack()))
        if page.page + 1 < page.pages:
            nav.append(_button(t.plain("inbox.next"), CDFollowUps(page=page.page + 1).pack()))
        keyboard.append(nav)
    keyboard.append([_button(t.plain("inbox.back"), CDInboxPage(page=0).pack())])
    return "\n".join(lines), markup(keyboard)


async def _inbox_view(staff: StaffContext, page: int) -> tuple[str, InlineKeyboardMarkup]:
    followups = await count_followups(staff.session)
    page_view = await inbox_page(staff.session, page)
    return render_inbox(page_view, followups, staff.t, staff.clock.now())


async def _edit(callback: CallbackQuery, text: str, keyboard: InlineKeyboardMarkup) -> None:
    if not isinstance(callback.message, Message):
        return
    try:
        await callback.message.edit_text(text, reply_markup=keyboard)
    except TelegramBadRequest as exc:
        # A second press on a view that did not change: nothing to redraw.
        if "message is not modified" not in exc.message:
            raise


async def cmd_inbox(message: Message, staff: StaffContext) -> None:
    text, keyboard = await _inbox_view(staff, 0)
    await message.answer(text, reply_markup=keyboard)


async def on_inbox_page(
    callback: CallbackQuery, callback_data: CDInboxPage, staff: StaffContext
) -> None:
    await callback.answer()
    await _edit(callback, *await _inbox_view(staff, callback_data.page))


async def on_ticket(
    callback: CallbackQuery, callback_data: CDTicket, state: FSMContext, staff: StaffContext
) -> None:
    session, config, t = staff.session, staff.config, staff.t
    ticket_id, page = callback_data.ticket_id, callback_data.page
    thread = await ticket_thread(session, ticket_id)
    if thread is None:
        await callback.answer(t.plain("inbox.ticket_not_found"), show_alert=True)
        return
    name = thread.member.name if thread.member and thread.member.name else "?"
    if callback_data.action == "reply":
        if thread.ticket.status == TicketStatus.CLOSED:
            await callback.answer(t.plain("inbox.ticket_already_closed", number=ticket_id))
            return
        await state.set_state(InboxReply.text)
        await state.update_data(reply_ticket_id=ticket_id)
        await callback.answer()
        if isinstance(callback.message, Message):
            await callback.message.answer(t("inbox.reply_prompt", number=ticket_id, name=name))
        return
    if callback_data.action == "photos":
        await callback.answer()
        if isinstance(callback.message, Message):
            await _send_photos(callback.message, thread, t, config)
        return
    if callback_data.action == "close":
        _, closed_now = await close_ticket_by_staff(
            session,
            staff.clock,
            config,
            ticket_id=ticket_id,
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
        )
        key = "inbox.ticket_closed" if closed_now else "inbox.ticket_already_closed"
        await callback.answer(t.plain(key, number=ticket_id, name=name))
        if closed_now and callback.bot is not None:
            closer = callback.from_user.full_name
            closed_text = t("inbox.forum.closed", number=ticket_id, staff=closer)
            await announce_closed(callback.bot, config, thread.ticket.forum_topic_id, closed_text)
        thread = await ticket_thread(session, ticket_id)
        assert thread is not None
    else:
        await callback.answer()
    await _edit(callback, *render_thread(thread, t, config, page))


async def _send_photos(
    message: Message, thread: Thread, t: Translator, config: CareConfig
) -> None:
    """The shopper's photos in this ticket, newest last (Telegram keeps them by file id)."""
    with_photos = [m for m in thread.ticket.messages if m.photo_file_id][-PHOTOS_SHOWN:]
    for item in with_photos:
        assert item.photo_file_id is not None
        caption = t(
            "inbox.photo_caption",
            number=thread.ticket.id,
            when=short_time(item.created_at, config),
            text=excerpt(item.text, 200),
        )
        await message.answer_photo(item.photo_file_id, caption=caption)


async def on_reply_text(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    text = (message.text or "").strip()
    if not text:
        await message.answer(t("inbox.reply_text_only"))
        return
    if len(text) > MAX_TEXT_CHARS:
        await message.answer(t("inbox.reply_too_long", length=len(text), limit=MAX_TEXT_CHARS))
        return
    ticket_id = int((await state.get_data()).get("reply_ticket_id") or 0)
    # Leave the reply state before writing: the FSM storage commits on its own connection,
    # which must not wait behind this update's open write transaction.
    await state.clear()
    try:
        await answer_ticket(
            staff.session,
            staff.clock,
            staff.config,
            ticket_id=ticket_id,
            text=text,
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
        )
    except TicketError as exc:
        reasons = {"closed": "inbox.ticket_already_closed", "member_gone": "inbox.member_gone"}
        key = reasons.get(exc.reason, "inbox.ticket_not_found")
        await message.answer(t(key, number=ticket_id))
        return
    thread = await ticket_thread(staff.session, ticket_id)
    name = thread.member.name if thread and thread.member and thread.member.name else "?"
    await message.answer(t("inbox.reply_sent", number=ticket_id, name=name))


async def on_reply_cancel(message: Message, t: Translator, state: FSMContext) -> None:
    await state.clear()
    await message.answer(t("inbox.reply_cancelled"))


async def on_followups(
    callback: CallbackQuery, callback_data: CDFollowUps, staff: StaffContext
) -> None:
    await callback.answer()
    page = await followup_page(staff.session, callback_data.page)
    await _edit(callback, *render_followups(page, staff.t, staff.config))


async def on_followed_up(
    callback: CallbackQuery, callback_data: CDFollowedUp, staff: StaffContext
) -> None:
    try:
        await mark_response_followed_up(
            staff.session,
            staff.clock,
            response_id=callback_data.response_id,
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
        )
    except LookupError:
        await callback.answer()
        return
    await callback.answer(staff.t.plain("inbox.followup_marked"))
    page = await followup_page(staff.session, 0)
    await _edit(callback, *render_followups(page, staff.t, staff.config))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    cashier = MinRole(StaffRole.CASHIER)
    router.message.register(
        on_reply_cancel, StateFilter(InboxReply.text), Command("cancel"), cashier
    )
    router.message.register(cmd_inbox, Command("inbox"), cashier)
    router.message.register(
        on_reply_text,
        StateFilter(InboxReply.text),
        ~F.text.startswith("/"),
        cashier,
    )
    router.callback_query.register(on_inbox_page, CDInboxPage.filter(), cashier)
    router.callback_query.register(on_ticket, CDTicket.filter(), cashier)
    router.callback_query.register(on_followups, CDFollowUps.filter(), cashier)
    router.callback_query.register(on_followed_up, CDFollowedUp.filter(), cashier)
    return router
