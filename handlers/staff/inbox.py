"""/inbox: conversations waiting for the shop first, each with the member's one-line context;
a thread; take it, answer (the next message: text, photo, document, voice, sticker …, or a
saved reply), close, reopen; low-score follow-ups. A conversation whose member erased their
data says so and offers no answer."""

from __future__ import annotations

from datetime import datetime

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from care.conversations.inbox import (
    FollowUpPage,
    InboxPage,
    MemberContext,
    Thread,
    answer_ticket,
    close_ticket_by_staff,
    count_followups,
    followup_page,
    inbox_page,
    mark_response_followed_up,
    reopen_ticket_by_staff,
    take_ticket,
    ticket_thread,
)
from care.conversations.saved_replies import get_saved_reply, list_saved_replies
from care.conversations.tickets import (
    MAX_CAPTION_CHARS,
    MAX_TEXT_CHARS,
    MEDIA_ICONS,
    TicketError,
    message_media,
)
from care.core.config import CareConfig
from care.core.i18n import Translator
from care.loyalty.ledger import tier_name
from handlers.content import message_content
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt, short_time
from handlers.staff.forum import announce_closed
from handlers.staff.keyboards import (
    CDFollowedUp,
    CDFollowUps,
    CDInboxPage,
    CDSavedReply,
    CDTicket,
    markup,
)
from handlers.staff.media import send_attachment
from storage.enums import MediaKind, MessageAuthor, StaffRole, TicketStatus
from storage.models import Ticket, TicketMessage

THREAD_MESSAGES = 8
THREAD_TEXT_CHARS = 400
PHOTOS_SHOWN = 5
SAVED_SHOWN = 20
# Why an answer did not go out, by TicketError reason.
REFUSALS = {
    "closed": "inbox.ticket_already_closed",
    "member_gone": "inbox.member_gone",
    "too_long": "conversation.inbox.reply_too_long",
    "unsupported": "conversation.inbox.reply_unsupported",
    "no_caption": "conversation.inbox.reply_unsupported",
    "empty": "conversation.inbox.reply_unsupported",
}


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


def context_line(t: Translator, context: MemberContext | None) -> str:
    """The member in one line: tier, points, open complaints, last score — or erased."""
    if context is None:
        return t.plain("conversation.inbox.erased_short")
    parts = [
        tier_name(context.tier, t.locale) if context.tier is not None else "—",
        t.plain("conversation.inbox.points", points=context.points),
    ]
    if context.open_complaints:
        parts.append(t.plain("conversation.inbox.complaints", count=context.open_complaints))
    if context.last_score is not None:
        kind, score = context.last_score
        scale = 10 if kind == "nps" else 5
        kind_key = f"m360.survey_kind.{kind}"
        label = t.plain(kind_key) if t.has(kind_key) else kind
        parts.append(
            t.plain("conversation.inbox.last_score", kind=label, score=score, scale=scale)
        )
    return " · ".join(parts)


def _status_icon(ticket: Ticket) -> str:
    return "⏳" if ticket.status == TicketStatus.OPEN else "💬"


def render_inbox(
    page: InboxPage, followups: int, t: Translator, now: datetime, me: int | None = None
) -> tuple[str, InlineKeyboardMarkup]:
    keyboard: list[list[InlineKeyboardButton]] = []
    if not page.total:
        text = t("inbox.empty")
    else:
        lines = [
            t(
                "conversation.inbox.title",
                waiting=page.waiting,
                count=page.total,
                page=page.page + 1,
                pages=page.pages,
            )
        ]
        for item in page.items:
            ticket, member = item.ticket, item.member
            # Waiting: how long the shopper has waited; otherwise how old the conversation is.
            since = ticket.waiting_since or ticket.created_at
            name = excerpt(member.name if member and member.name else "?", 24)
            if ticket.assigned_to is None:
                owner = ""
            elif ticket.assigned_to == me:
                owner = t.plain("conversation.inbox.mine")
            else:
                owner = t.plain("conversation.inbox.taken")
            lines.append(
                t(
                    "conversation.inbox.item",
                    icon=_status_icon(ticket),
                    number=ticket.id,
                    kind=_kind(t, ticket.kind),
                    name=name,
                    age=_age(t, since, now),
                    owner=owner,
                    context=context_line(t, item.context),
                )
            )
            label = t.plain(
                "inbox.line",
                number=ticket.id,
                kind=_kind(t, ticket.kind),
                name=name,
                age=_age(t, since, now),
                answered=(
                    t.plain("inbox.answered_mark")
                    if ticket.status == TicketStatus.ANSWERED
                    else ""
                ),
            )
            data = CDTicket(action="open", ticket_id=ticket.id, page=page.page).pack()
            keyboard.append([_button(label, data)])
        text = "\n".join(lines)
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


def _media_label(t: Translator, message: TicketMessage) -> str:
    if message.media_kind == MediaKind.PHOTO:
        return t.plain("inbox.thread_photo")
    key = f"conversation.media.{message.media_kind}"
    return t.plain(key) if t.has(key) else MEDIA_ICONS.get(message.media_kind or "", "")


def render_thread(
    thread: Thread, t: Translator, config: CareConfig, page: int, me: int | None = None
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
        ),
        context_line(t, thread.context),
    ]
    if ticket.assigned_to is not None:
        who = (
            t.plain("conversation.inbox.you")
            if ticket.assigned_to == me
            else thread.staff_names.get(ticket.assigned_to, str(ticket.assigned_to))
        )
        lines.append(t("conversation.inbox.assigned", staff=who))
    if not thread.reachable:
        lines.append(t("conversation.inbox.erased_notice"))
    messages = ticket.messages[-THREAD_MESSAGES:]
    hidden = len(ticket.messages) - len(messages)
    if hidden:
        lines.append(t("inbox.thread_more", count=hidden))
    for message in messages:
        body = excerpt(message.text, THREAD_TEXT_CHARS) if message.text else ""
        if message.media_kind:
            body = f"{_media_label(t, message)} {body}".strip()
        when = short_time(message.created_at, config)
        if message.author == MessageAuthor.STAFF:
            staff_id = message.staff_telegram_id
            staff = thread.staff_names.get(staff_id, "?") if staff_id is not None else "?"
            lines.append(t("inbox.thread_staff", when=when, staff=staff, text=body))
        else:
            lines.append(t("inbox.thread_member", when=when, text=body))

    def button(key: str, action: str, **values: object) -> InlineKeyboardButton:
        data = CDTicket(action=action, ticket_id=ticket.id, page=page).pack()
        return _button(t.plain(key, **values), data)

    keyboard: list[list[InlineKeyboardButton]] = []
    if ticket.status != TicketStatus.CLOSED:
        if thread.reachable:
            keyboard.append(
                [button("inbox.reply", "reply"), button("conversation.inbox.saved", "saved")]
            )
        row = [button("inbox.close", "close")]
        if ticket.assigned_to != me:
            row.insert(0, button("conversation.inbox.take", "take"))
        keyboard.append(row)
    elif thread.reachable:
        keyboard.append([button("conversation.inbox.reopen", "reopen")])
    attachments = [m for m in ticket.messages if m.media_kind and m.file_id]
    if attachments:
        if all(m.media_kind == MediaKind.PHOTO for m in attachments):
            keyboard.append([button("inbox.photos", "photos", count=len(attachments))])
        else:
            keyboard.append(
                [button("conversation.inbox.attachments", "photos", count=len(attachments))]
            )
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
                    score=response.score,
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
    return render_inbox(page_view, followups, staff.t, staff.clock.now(), staff.user_id)


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
    action = callback_data.action
    if action in ("reply", "saved") and not thread.reachable:
        await callback.answer(t.plain("inbox.member_gone", number=ticket_id), show_alert=True)
        return
    if action in ("reply", "saved") and thread.ticket.status == TicketStatus.CLOSED:
        await callback.answer(t.plain("inbox.ticket_already_closed", number=ticket_id))
        return
    if action == "reply":
        await state.set_state(InboxReply.text)
        await state.update_data(reply_ticket_id=ticket_id)
        await callback.answer()
        if isinstance(callback.message, Message):
            await callback.message.answer(
                t("conversation.inbox.reply_prompt", number=ticket_id, name=name)
            )
        return
    if action == "saved":
        await callback.answer()
        await _edit(callback, *await _saved_view(staff, ticket_id, page))
        return
    if action == "photos":
        await callback.answer()
        if isinstance(callback.message, Message) and callback.bot is not None:
            await _send_attachments(callback.bot, callback.message.chat.id, thread, t, config)
        return
    if action == "take":
        try:
            await take_ticket(
                session,
                staff.clock,
                ticket_id=ticket_id,
                staff_telegram_id=staff.user_id,
                staff_role=staff.role,
            )
        except TicketError:
            await callback.answer(t.plain("inbox.ticket_not_found"), show_alert=True)
            return
        await callback.answer(t.plain("conversation.inbox.taken_by_you", number=ticket_id))
    elif action == "reopen":
        try:
            await reopen_ticket_by_staff(
                session,
                staff.clock,
                ticket_id=ticket_id,
                staff_telegram_id=staff.user_id,
                staff_role=staff.role,
            )
        except TicketError as exc:
            key = f"conversation.inbox.reopen_{exc.reason}"
            await callback.answer(t.plain(key, number=ticket_id), show_alert=True)
            return
        await callback.answer(t.plain("conversation.inbox.reopened", number=ticket_id))
    elif action == "close":
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
    else:
        await callback.answer()
    if action != "open":
        refreshed = await ticket_thread(session, ticket_id)
        assert refreshed is not None
        thread = refreshed
    await _edit(callback, *render_thread(thread, t, config, page, staff.user_id))


async def _saved_view(
    staff: StaffContext, ticket_id: int, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    t = staff.t
    replies = (await list_saved_replies(staff.session))[:SAVED_SHOWN]
    keyboard = [
        [
            _button(
                reply.title,
                CDSavedReply(
                    action="pick", ticket_id=ticket_id, reply_id=reply.id, page=page
                ).pack(),
            )
        ]
        for reply in replies
    ]
    keyboard.append(
        [
            _button(
                t.plain("conversation.inbox.back_to_thread", number=ticket_id),
                CDTicket(action="open", ticket_id=ticket_id, page=page).pack(),
            )
        ]
    )
    key = "conversation.saved.choose" if replies else "conversation.saved.none"
    return t(key, number=ticket_id), markup(keyboard)


async def on_saved_reply(
    callback: CallbackQuery, callback_data: CDSavedReply, staff: StaffContext
) -> None:
    t, ticket_id, page = staff.t, callback_data.ticket_id, callback_data.page
    reply = await get_saved_reply(staff.session, callback_data.reply_id)
    if reply is None:
        await callback.answer(t.plain("conversation.saved.gone"), show_alert=True)
        await _edit(callback, *await _saved_view(staff, ticket_id, page))
        return
    if callback_data.action == "pick":
        await callback.answer()
        send = CDSavedReply(action="send", ticket_id=ticket_id, reply_id=reply.id, page=page)
        back = CDTicket(action="saved", ticket_id=ticket_id, page=page)
        keyboard = [
            [_button(t.plain("conversation.saved.send"), send.pack())],
            [_button(t.plain("inbox.back"), back.pack())],
        ]
        text = t("conversation.saved.preview", number=ticket_id, text=reply.text)
        await _edit(callback, text, markup(keyboard))
        return
    try:
        await answer_ticket(
            staff.session,
            staff.clock,
            staff.config,
            ticket_id=ticket_id,
            text=reply.text,
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
        )
    except TicketError as exc:
        key = REFUSALS.get(exc.reason, "inbox.ticket_not_found")
        await callback.answer(
            t.plain(key, number=ticket_id, length=len(reply.text), limit=MAX_TEXT_CHARS),
            show_alert=True,
        )
        return
    thread = await ticket_thread(staff.session, ticket_id)
    assert thread is not None
    name = thread.member.name if thread.member and thread.member.name else "?"
    await callback.answer(t.plain("inbox.reply_sent", number=ticket_id, name=name))
    await _edit(callback, *render_thread(thread, t, staff.config, page, staff.user_id))


async def _send_attachments(
    bot: Bot, chat_id: int, thread: Thread, t: Translator, config: CareConfig
) -> None:
    """The conversation's attachments, newest last, each as itself (by Telegram file id)."""
    with_media = [m for m in thread.ticket.messages if m.media_kind and m.file_id]
    for item in with_media[-PHOTOS_SHOWN:]:
        media = message_media(item)
        assert media is not None
        caption = t(
            "inbox.photo_caption",
            number=thread.ticket.id,
            when=short_time(item.created_at, config),
            text=excerpt(item.text, 200),
        )
        await send_attachment(bot, chat_id, caption, media, raw_text=item.text)


async def on_reply(message: Message, state: FSMContext, staff: StaffContext) -> None:
    """The staff member's answer: text, or a photo, document, voice, sticker … (with caption)."""
    t = staff.t
    content = message_content(message)
    if content is None:
        await message.answer(t("conversation.inbox.reply_unsupported"))
        return
    text, media = content
    limit = MAX_CAPTION_CHARS if media is not None else MAX_TEXT_CHARS
    length = len((text or "").strip())
    if length > limit:
        await message.answer(t("inbox.reply_too_long", length=length, limit=limit))
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
            media=media,
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
        )
    except TicketError as exc:
        key = REFUSALS.get(exc.reason, "inbox.ticket_not_found")
        await message.answer(t(key, number=ticket_id, length=length, limit=limit))
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
        on_reply,
        StateFilter(InboxReply.text),
        ~F.text.startswith("/"),
        cashier,
    )
    router.callback_query.register(on_inbox_page, CDInboxPage.filter(), cashier)
    router.callback_query.register(on_ticket, CDTicket.filter(), cashier)
    router.callback_query.register(
        on_saved_reply, CDSavedReply.filter(F.action.in_({"pick", "send"})), cashier
    )
    router.callback_query.register(on_followups, CDFollowUps.filter(), cashier)
    router.callback_query.register(on_followed_up, CDFollowedUp.filter(), cashier)
    return router
