"""Forum mode: with STAFF_CHAT_ID naming a forum supergroup, each ticket lives in its own
topic there, and a staff member answers the shopper by simply writing in that topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, Filter
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.conversations.forum import sync_forum, ticket_for_topic
from care.conversations.inbox import answer_ticket, close_ticket_by_staff, ticket_thread
from care.conversations.tickets import MAX_TEXT_CHARS, TicketError
from care.core.clock import Clock
from care.core.config import CareConfig
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from storage.enums import StaffRole, TicketStatus

log = logging.getLogger(__name__)

SYNC_INTERVAL_SECONDS = 1.0
CAPTION_MAX = 1024


class BotForum:
    """``care.conversations.forum.ForumPort`` over the Bot API."""

    def __init__(self, bot: Bot, chat_id: int) -> None:
        self.bot = bot
        self.chat_id = chat_id

    async def create_topic(self, name: str) -> int:
        topic = await self.bot.create_forum_topic(self.chat_id, name)
        return topic.message_thread_id

    async def post(self, topic_id: int, text: str, photo: str | None = None) -> None:
        if photo:
            await self.bot.send_photo(
                self.chat_id, photo, caption=text[:CAPTION_MAX], message_thread_id=topic_id
            )
        else:
            await self.bot.send_message(self.chat_id, text, message_thread_id=topic_id)


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
    session, t = staff.session, staff.t
    ticket = await ticket_for_topic(session, topic_id)
    if ticket is None or message.from_user is None:
        return  # a topic that is not a ticket's: staff talk among themselves
    if ticket.status == TicketStatus.CLOSED:
        await message.reply(t("inbox.ticket_already_closed", number=ticket.id))
        return
    text = (message.text or "").strip()
    if not text:
        await message.reply(t("inbox.reply_text_only"))
        return
    if len(text) > MAX_TEXT_CHARS:
        await message.reply(t("inbox.reply_too_long", length=len(text), limit=MAX_TEXT_CHARS))
        return
    try:
        await answer_ticket(
            session,
            staff.clock,
            staff.config,
            ticket_id=ticket.id,
            text=text,
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
        )
    except TicketError as exc:
        key = "inbox.member_gone" if exc.reason == "member_gone" else "inbox.ticket_not_found"
        await message.reply(t(key, number=ticket.id))
        return
    thread = await ticket_thread(session, ticket.id)
    member = thread.member if thread is not None else None
    await message.reply(t("inbox.forum.sent", name=member.name if member and member.name else "?"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.SUPERGROUP, InStaffTopic())
    cashier = MinRole(StaffRole.CASHIER)
    router.message.register(on_topic_close, Command("close"), cashier)
    router.message.register(on_topic_message, ~F.text.startswith("/"), cashier)

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
