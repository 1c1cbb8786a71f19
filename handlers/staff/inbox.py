"""/inbox: conversations waiting for the shop first, each with the member's one-line context;
a thread; take it, answer (the next message: text, photo, document, voice, sticker …, or a
saved reply), close, reopen; low-score follow-ups. A conversation whose member erased their
data says so and offers no answer."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from care.console.goodwill import may_grant
from care.conversations.inbox import (
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
    Media,
    TicketError,
    message_media,
)
from care.core.config import CareConfig
from care.core.i18n import Translator
from care.staff.profiles import staff_labels
from handlers.content import message_content
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt, member_name, short_time
from handlers.staff.forum import announce_closed
from handlers.staff.inbox_views import button, render_followups, render_inbox, render_thread
from handlers.staff.keyboards import (
    CDFollowedUp,
    CDFollowUps,
    CDInboxPage,
    CDSavedReply,
    CDTicket,
    markup,
)
from handlers.staff.media import send_attachment
from storage.enums import StaffRole, TicketStatus

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
    # The answer was a photo album: its further photos follow the first to the customer.
    album = State()


async def _inbox_view(staff: StaffContext, page: int) -> tuple[str, InlineKeyboardMarkup]:
    followups = await count_followups(staff.session)
    page_view = await inbox_page(staff.session, page)
    assigned = [i.ticket.assigned_to for i in page_view.items if i.ticket.assigned_to is not None]
    assignees = await staff_labels(staff.session, staff.t, assigned)
    return render_inbox(page_view, followups, staff.t, staff.clock.now(), staff.user_id, assignees)


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
    thread = await ticket_thread(session, ticket_id, t)
    if thread is None:
        await callback.answer(t.plain("inbox.ticket_not_found"), show_alert=True)
        return
    name = member_name(t, thread.member)
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
        refreshed = await ticket_thread(session, ticket_id, t)
        assert refreshed is not None
        thread = refreshed
    await _edit(
        callback,
        *render_thread(thread, t, config, page, staff.user_id, goodwill=may_grant(staff.role)),
    )


async def _saved_view(
    staff: StaffContext, ticket_id: int, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    t = staff.t
    replies = (await list_saved_replies(staff.session))[:SAVED_SHOWN]
    keyboard = [
        [
            button(
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
            button(
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
            [button(t.plain("conversation.saved.send"), send.pack())],
            [button(t.plain("inbox.back"), back.pack())],
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
            saved_reply=reply.title,
        )
    except TicketError as exc:
        key = REFUSALS.get(exc.reason, "inbox.ticket_not_found")
        await callback.answer(
            t.plain(key, number=ticket_id, length=len(reply.text), limit=MAX_TEXT_CHARS),
            show_alert=True,
        )
        return
    thread = await ticket_thread(staff.session, ticket_id, staff.t)
    assert thread is not None
    name = member_name(t, thread.member)
    await callback.answer(t.plain("inbox.reply_sent", number=ticket_id, name=name))
    await _edit(
        callback,
        *render_thread(
            thread, t, staff.config, page, staff.user_id, goodwill=may_grant(staff.role)
        ),
    )


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
    if message.media_group_id is not None:
        # Telegram sends an album as one message per photo: the rest belong to this answer.
        await state.set_state(InboxReply.album)
        await state.update_data(reply_ticket_id=ticket_id, reply_album=message.media_group_id)
    if not await _send_answer(message, staff, ticket_id, text, media, limit):
        return
    thread = await ticket_thread(staff.session, ticket_id, staff.t)
    name = member_name(t, thread.member if thread else None)
    await message.answer(t("inbox.reply_sent", number=ticket_id, name=name))


async def on_reply_album(message: Message, state: FSMContext, staff: StaffContext) -> None:
    """A further photo of the album the staff member answered with goes to the customer too,
    without another "on its way"; anything else ends the answer and is handled as usual."""
    data = await state.get_data()
    if message.media_group_id is None or message.media_group_id != data.get("reply_album"):
        await state.clear()
        raise SkipHandler
    content = message_content(message)
    if content is None:
        return
    text, media = content
    ticket_id = int(data.get("reply_ticket_id") or 0)
    if not await _send_answer(message, staff, ticket_id, text, media, MAX_CAPTION_CHARS):
        await state.clear()


async def _send_answer(
    message: Message,
    staff: StaffContext,
    ticket_id: int,
    text: str | None,
    media: Media | None,
    limit: int,
) -> bool:
    """Send the staff member's answer to the customer; a refusal is told to them (False)."""
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
        length = len((text or "").strip())
        await message.answer(staff.t(key, number=ticket_id, length=length, limit=limit))
        return False
    return True


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
    router.message.register(
        on_reply_album, StateFilter(InboxReply.album), ~F.text.startswith("/"), cashier
    )
    router.callback_query.register(on_inbox_page, CDInboxPage.filter(), cashier)
    router.callback_query.register(on_ticket, CDTicket.filter(), cashier)
    router.callback_query.register(
        on_saved_reply, CDSavedReply.filter(F.action.in_({"pick", "send"})), cashier
    )
    router.callback_query.register(on_followups, CDFollowUps.filter(), cashier)
    router.callback_query.register(on_followed_up, CDFollowedUp.filter(), cashier)
    return router
