"""Every message counts: whatever a shopper writes outside a flow reaches the shop.

Text, a photo (each photo of an album), video, voice, audio, a document, a sticker or a
location joins the shopper's open conversation or opens one; the shopper is acknowledged once
per conversation, with when to expect an answer. Someone who is not a member yet can write
too: they get the same pending member row ``/start`` would make, so the conversation is theirs
when they join. (Staff who are not members get the "unknown command" hint instead: their
stray text is meant for a console flow, not for the shop.) This router comes last among the
shopper's: flows and commands go first.
"""

from __future__ import annotations

from typing import Literal

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from care.conversations.tickets import (
    MAX_TEXT_CHARS,
    Media,
    TicketError,
    receive_member_message,
)
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import Translator
from care.members.membership import create_member
from care.staff.roles import role_of
from handlers.content import message_content, sender_identity
from storage.models import Member


def acknowledgement(t: Translator, config: CareConfig) -> str:
    """What the shopper reads once a conversation opens: received, and when to expect us."""
    when = (
        t("conversation.ack_hours", hours=config.opening_hours)
        if config.opening_hours
        else t("conversation.ack_soon")
    )
    return f"{t('conversation.ack')}\n{when}"


async def content_or_refusal(
    message: Message, t: Translator
) -> tuple[str | None, Media | None] | None:
    """The message's content; else the shopper is told what went wrong and None comes back."""
    content = message_content(message)
    if content is None:
        await message.answer(t("conversation.unsupported"))
        return None
    text = (content[0] or "").strip()
    if len(text) > MAX_TEXT_CHARS:
        await message.answer(t("conversation.too_long", length=len(text), limit=MAX_TEXT_CHARS))
        return None
    if not text and content[1] is None:
        await message.answer(t("conversation.unsupported"))
        return None
    return content


async def on_shopper_message(
    message: Message,
    session: AsyncSession,
    member: Member | None,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    if member is None and await role_of(session, config, message.chat.id) is not None:
        # Staff who are not shoppers here: a stray text is most likely meant for a console
        # flow that has ended, not a message to the shop.
        await message.answer(t("common.unknown_command"))
        return
    content = await content_or_refusal(message, t)
    if content is None:
        return
    if member is None:
        member = await create_member(session, sender_identity(message), config, clock)
    text, media = content
    try:
        received = await receive_member_message(
            session, clock, config, member=member, text=text, media=media
        )
    except TicketError:  # checked above; a race at worst
        await message.answer(t("conversation.unsupported"))
        return
    if received.opened:
        await message.answer(acknowledgement(t, config))


Kept = Literal["refused", "kept", "quiet"]
KEPT_ALBUM_KEY = "kept_album"


async def keep_mid_flow(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    clock: Clock,
    config: CareConfig,
) -> Kept:
    """Something sent while a flow waits that is clearly not an answer to it (a question, a
    sentence, a photo, a sticker …) joins the shopper's conversation like any other message,
    and staff are alerted: nothing typed mid-flow is dropped. ``"kept"``: the caller tells the
    shopper (``kept_note``) and asks its question again; ``"quiet"``: a further photo of an
    album already kept, which needs no answer; ``"refused"``: nothing a conversation can keep
    (a poll, a dice, an overlong text), so the caller just asks again."""
    content = message_content(message)
    if content is None:
        return "refused"
    text, media = content
    # The FSM state first: its storage commits on a connection of its own, which must not wait
    # behind this update's write transaction.
    group, quiet = message.media_group_id, False
    if group is not None:
        quiet = (await state.get_data()).get(KEPT_ALBUM_KEY) == group
        if not quiet:
            await state.update_data({KEPT_ALBUM_KEY: group})
    try:
        await receive_member_message(session, clock, config, member=member, text=text, media=media)
    except TicketError:
        return "refused"
    return "quiet" if quiet else "kept"


def kept_note(t: Translator, kept: Kept, question: str) -> str:
    """The step's question again, after "that reached our team" when the message was kept."""
    return f"{t('conversation.kept')}\n\n{question}" if kept == "kept" else question


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.register(on_shopper_message, ~F.text.startswith("/"))
    return router
