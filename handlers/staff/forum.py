"""Forum mode: with STAFF_CHAT_ID naming a forum supergroup, each conversation lives in its own
topic there (the shopper's photos, voice, stickers … included), and a staff member answers the
shopper by simply writing in that topic — text or media. ``/take``, ``/close``, ``/reopen`` and
``/saved`` (the saved replies) work in the topic too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, Filter
from aiogram.types import CallbackQuery, InlineKeyboardButton, Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.conversations.forum import sync_forum, ticket_for_topic
from care.conversations.inbox import (
    answer_ticket,
    close_ticket_by_staff,
    reopen_ticket_by_staff,
    take_ticket,
    ticket_thread,
)
from care.conversations.saved_replies import get_saved_reply, list_saved_replies
from care.conversations.tickets import MAX_CAPTION_CHARS, MAX_TEXT_CHARS, Media, TicketError
from care.core.clock import Clock
from care.core.config import CareConfig
from handlers.content import message_content
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.keyboards import CDSavedReply, markup
from handlers.staff.media import send_attachment
from storage.enums import StaffRole

log = logging.getLogger(__name__)

SYNC_INTERVAL_SECONDS = 1.0
# How the audit log tells actions taken in the staff group's topics.
VIA_FORUM = "forum"
CAPTION_MAX = 1024


class BotForum:
    """``care.conversations.forum.ForumPort`` over the Bot API."""

    def __init__(self, bot: Bot, chat_id: int) -> None:
        self.bot = bot
        self.chat_id = chat_id

    async def create_topic(self, name: str) -> int:
        topic = await self.bot.create_forum_topic(self.chat_id, name)
        return topic.message_thread_id

    async def close_topic(self, topic_id: int) -> None:
        with contextlib.suppress(TelegramAPIError):  # closed by hand already: fine
            await self.bot.close_forum_topic(self.chat_id, topic_id)

    async def post(self, topic_id: int, text: str, media: Media | None = None) -> None:
        if media is None:
            await self.bot.send_message(self.chat_id, text, message_thread_id=topic_id)
            return
        if len(text) > CAPTION_MAX:
            # Too long for a caption: the text first, the attachment after it.
            await self.bot.send_message(self.chat_id, text, message_thread_id=topic_id)
            text = ""
        await send_attachment(self.bot, self.chat_id, text, media, thread_id=topic_id)


class ForumRelay:
    """Keeps the staff forum in step with the tickets, one short pass a second."""

    def __init__(
        self,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        config: CareConfig,
        clock: Clock,
        chat_id: int,
    ) -> None:
        self.port = BotForum(bot, chat_id)
        self.session_factory = session_factory
        self.config = config
        self.clock = clock
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while not self.stop.is_set():
            try:
                await sync_forum(self.session_factory, self.config, self.clock, self.port)
            except (TelegramAPIError, OSError) as exc:
                log.warning("forum sync failed, will retry: %r", exc)
            except Exception:
                log.exception("forum sync failed, will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), SYNC_INTERVAL_SECONDS)

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await self.task


class InStaffTopic(Filter):
    """A message in a topic of the configured staff forum; adds ``topic_id``."""

    async def __call__(self, message: Message, config: CareConfig) -> bool | dict[str, Any]:
        if config.staff_chat_id is None or message.chat.id != config.staff_chat_id:
            return False
        if not message.is_topic_message or message.message_thread_id is None:
            return False
        return {"topic_id": message.message_thread_id}


async def announce_closed(bot: Bot, config: CareConfig, topic_id: int | None, text: str) -> None:
    """Tell the ticket's topic it was closed (from the inbox) and close the topic."""
    if config.staff_chat_id is None or not topic_id or topic_id <= 0:
        return
    with contextlib.suppress(TelegramAPIError):  # topic deleted or already closed by hand
        await bot.send_message(config.staff_chat_id, text, message_thread_id=topic_id)
        await bot.close_forum_topic(config.staff_chat_id, topic_id)


async def on_topic_close(message: Message, topic_id: int, staff: StaffContext, bot: Bot) -> None:
    session, t = staff.session, staff.t
    ticket = await ticket_for_topic(session, topic_id)
    if ticket is None or message.from_user is None:
        return
    _, closed_now = await close_ticket_by_staff(
        session,
        staff.clock,
        staff.config,
        ticket_id=ticket.id,
        staff_telegram_id=staff.user_id,
        staff_role=staff.role,
        via=VIA_FORUM,
    )
    if not closed_now:
        await message.reply(t("inbox.ticket_already_closed", number=ticket.id))
        return
    await message.reply(
        t("inbox.forum.closed", number=ticket.id, staff=message.from_user.full_name)
    )
    with contextlib.suppress(TelegramAPIError):  # already closed by hand: fine
        await bot.close_forum_topic(message.chat.id, topic_id)


async def on_topic_message(message: Message, topic_id: int, staff: StaffContext) -> None:
    """A staff member writes in a conversation's topic: text or media goes to the shopper."""
    session, t = staff.session, staff.t
    ticket = await ticket_for_topic(session, topic_id)
    if ticket is None or message.from_user is None:
        return  # a topic that is not a ticket's: staff talk among themselves
    content = message_content(message)
    if content is None:
        await message.reply(t("conversation.inbox.reply_unsupported"))
        return
    text, media = content
    limit = MAX_CAPTION_CHARS if media is not None else MAX_TEXT_CHARS
    length = len((text or "").strip())
    if length > limit:
        await message.reply(t("inbox.reply_too_long", length=length, limit=limit))
        return
    await _answer_in_topic(message, staff, ticket.id, text, media)


async def _answer_in_topic(
    message: Message,
    staff: StaffContext,
    ticket_id: int,
    text: str | None,
    media: Media | None,
    saved_reply: str | None = None,
) -> None:
    t = staff.t
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
            saved_reply=saved_reply,
            via=VIA_FORUM,
        )
    except TicketError as exc:
        refusals = {
            "member_gone": "inbox.member_gone",
            "closed": "inbox.ticket_already_closed",
        }
        key = refusals.get(exc.reason, "conversation.inbox.reply_unsupported")
        await message.reply(t(key, number=ticket_id))
        return
    thread = await ticket_thread(staff.session, ticket_id, staff.t)
    member = thread.member if thread is not None else None
    await message.reply(t("inbox.forum.sent", name=member.name if member and member.name else "?"))


async def on_topic_take(message: Message, topic_id: int, staff: StaffContext) -> None:
    ticket = await ticket_for_topic(staff.session, topic_id)
    if ticket is None:
        return
    await take_ticket(
        staff.session,
        staff.clock,
        ticket_id=ticket.id,
        staff_telegram_id=staff.user_id,
        staff_role=staff.role,
        via=VIA_FORUM,
    )
    name = message.from_user.full_name if message.from_user else "?"
    await message.reply(staff.t("conversation.forum.taken", number=ticket.id, staff=name))


async def on_topic_reopen(message: Message, topic_id: int, staff: StaffContext, bot: Bot) -> None:
    ticket = await ticket_for_topic(staff.session, topic_id)
    if ticket is None:
        return
    try:
        await reopen_ticket_by_staff(
            staff.session,
            staff.clock,
            ticket_id=ticket.id,
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
            via=VIA_FORUM,
        )
    except TicketError as exc:
        await message.reply(staff.t(f"conversation.inbox.reopen_{exc.reason}", number=ticket.id))
        return
    with contextlib.suppress(TelegramAPIError):  # open already: fine
        await bot.reopen_forum_topic(message.chat.id, topic_id)
    await message.reply(staff.t("conversation.inbox.reopened", number=ticket.id))


async def on_topic_saved(message: Message, topic_id: int, staff: StaffContext) -> None:
    """The saved replies as buttons; a press sends that answer to the topic's shopper."""
    t = staff.t
    ticket = await ticket_for_topic(staff.session, topic_id)
    if ticket is None:
        return
    replies = await list_saved_replies(staff.session)
    if not replies:
        await message.reply(t("conversation.saved.none", number=ticket.id))
        return
    keyboard = [
        [
            InlineKeyboardButton(
                text=reply.title,
                callback_data=CDSavedReply(
                    action="topic", ticket_id=ticket.id, reply_id=reply.id
                ).pack(),
            )
        ]
        for reply in replies[:20]
    ]
    await message.reply(
        t("conversation.saved.choose", number=ticket.id), reply_markup=markup(keyboard)
    )


async def on_topic_saved_press(
    callback: CallbackQuery, callback_data: CDSavedReply, staff: StaffContext
) -> None:
    reply = await get_saved_reply(staff.session, callback_data.reply_id)
    if reply is None or not isinstance(callback.message, Message):
        await callback.answer(staff.t.plain("conversation.saved.gone"), show_alert=True)
        return
    await callback.answer()
    with contextlib.suppress(TelegramAPIError):
        await callback.message.edit_reply_markup(reply_markup=None)
    await _answer_in_topic(
        callback.message, staff, callback_data.ticket_id, reply.text, None, reply.title
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.SUPERGROUP, InStaffTopic())
    cashier = MinRole(StaffRole.CASHIER)
    router.message.register(on_topic_close, Command("close"), cashier)
    router.message.register(on_topic_take, Command("take"), cashier)
    router.message.register(on_topic_reopen, Command("reopen"), cashier)
    router.message.register(on_topic_saved, Command("saved"), cashier)
    router.message.register(on_topic_message, ~F.text.startswith("/"), cashier)
    router.callback_query.register(
        on_topic_saved_press,
        CDSavedReply.filter(F.action == "topic"),
        F.message.chat.type == ChatType.SUPERGROUP,
        cashier,
    )

    relays: list[ForumRelay] = []

    async def start_relay(
        bot: Bot,
        config: CareConfig,
        clock: Clock,
        session_factory: async_sessionmaker[AsyncSession],
    ) -> None:
        if config.staff_chat_id is None:
            return
        try:
            chat = await bot.get_chat(config.staff_chat_id)
        except TelegramAPIError as exc:
            log.warning("STAFF_CHAT_ID %s is not reachable: %s", config.staff_chat_id, exc)
            return
        if not chat.is_forum:
            log.info("the staff chat has no topics: tickets stay in /inbox only")
            return
        relay = ForumRelay(bot, session_factory, config, clock, config.staff_chat_id)
        relay.task = asyncio.create_task(relay.run(), name="forum-relay")
        relays.append(relay)

    async def stop_relay() -> None:
        while relays:
            await relays.pop().close()

    router.startup.register(start_relay)
    router.shutdown.register(stop_relay)
    return router
