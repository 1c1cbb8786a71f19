"""Forum mode: every ticket gets its own topic in the staff supergroup (STAFF_CHAT_ID).

New tickets get a topic and their opening message; later messages from the shopper (media
included, by file id) follow into the same topic; a topic whose member erased their data is told
so and closed; a staff member answers by writing in the topic (see
``handlers.staff.forum``). The Telegram side is behind ``ForumPort`` so this module stays
free of the Bot API; each step claims its work with a conditional UPDATE in a short
transaction of its own, so replicas share the work and nothing is posted twice.
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.conversations.tickets import MEDIA_ICONS, Media, message_media
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import Translator, translator
from storage.models import Member, Ticket, TicketMessage
from storage.repos.forum import ERASED, ForumRepo
from storage.repos.members import MemberRepo
from storage.repos.tickets import TicketRepo

log = logging.getLogger(__name__)

BATCH = 20
TOPIC_NAME_MAX = 128
EXCERPT_MAX = 3000


class ForumPort(Protocol):
    """What forum mode needs from Telegram."""

    async def create_topic(self, name: str) -> int: ...

    async def post(self, topic_id: int, text: str, media: Media | None = None) -> None:
        """Post ``text`` into the topic, with the attachment (by file id) when there is one."""

    async def close_topic(self, topic_id: int) -> None:
        """Close the topic (nobody writes there any more)."""


def _kind(t: Translator, kind: str) -> str:
    key = f"m360.ticket_kind.{kind}"
    return t.plain(key) if t.has(key) else kind


def topic_name(t: Translator, ticket: Ticket, member: Member | None) -> str:
    name = (member.name if member and member.name else None) or "?"
    text = t.plain(
        "inbox.forum.topic_name", number=ticket.id, kind=_kind(t, ticket.kind), name=name
    )
    return text[:TOPIC_NAME_MAX]


def _body(message: TicketMessage) -> str:
    icon = MEDIA_ICONS.get(message.media_kind or "", "")
    return f"{icon} {(message.text or '')[:EXCERPT_MAX]}".strip()


async def ticket_for_topic(session: AsyncSession, topic_id: int) -> Ticket | None:
    """The ticket a staff forum topic belongs to."""
    if topic_id <= 0:
        return None
    return await ForumRepo(session).ticket_for_topic(topic_id)


async def sync_forum(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    clock: Clock,
    port: ForumPort,
) -> int:
    """Create topics for new tickets and copy shopper messages into them; returns posts made."""
    t = translator(config.default_locale)
    posted = 0
    async with session_factory() as session:
        waiting = await ForumRepo(session).tickets_without_topic(BATCH)
    for ticket_id in waiting:
        posted += await _open_topic(session_factory, t, port, ticket_id)
    async with session_factory() as session:
        pending = await ForumRepo(session).unsynced_messages(BATCH * 5)
    posted += await _announce_erasures(session_factory, t, port)
    for ticket, message, member in pending:
        async with session_factory() as session:
            claimed = await ForumRepo(session).claim_message(
                ticket.id, ticket.forum_synced_message_id, message.id
            )
            await session.commit()
        if not claimed:
            continue
        name = member.name or member.member_code
        text = t("inbox.forum.member_wrote", name=name, text=_body(message))
        await port.post(ticket.forum_topic_id or 0, text, message_media(message))
        posted += 1
    return posted


async def _announce_erasures(
    session_factory: async_sessionmaker[AsyncSession], t: Translator, port: ForumPort
) -> int:
    """Tell a conversation's topic, before anyone types there, that its member erased their
    data (it cannot be answered), and close the topic. Once per topic."""
    async with session_factory() as session:
        erased = await ForumRepo(session).erased_unannounced(BATCH)
    posted = 0
    for ticket_id, topic_id, mark in erased:
        async with session_factory() as session:
            claimed = await ForumRepo(session).claim_message(ticket_id, mark, ERASED)
            await session.commit()
        if not claimed:
            continue
        await port.post(topic_id, t("conversation.inbox.erased_notice"))
        await port.close_topic(topic_id)
        posted += 1
    return posted


async def _open_topic(
    session_factory: async_sessionmaker[AsyncSession],
    t: Translator,
    port: ForumPort,
    ticket_id: int,
) -> int:
    async with session_factory() as session:
        repo = ForumRepo(session)
        if not await repo.claim_topic(ticket_id):
            return 0
        await session.commit()
        ticket = await TicketRepo(session).get(ticket_id, with_messages=True)
        assert ticket is not None
        member = await MemberRepo(session).get(ticket.member_id)
    try:
        topic_id = await port.create_topic(topic_name(t, ticket, member))
    except Exception:
        # Give the ticket back so the next pass tries again.
        async with session_factory() as session:
            await ForumRepo(session).set_topic(ticket_id, None)
            await session.commit()
        raise
    first = next((m for m in ticket.messages if m.author == "member"), None)
    async with session_factory() as session:
        repo = ForumRepo(session)
        await repo.set_topic(ticket_id, topic_id)
        if first is not None:
            await repo.claim_message(ticket_id, None, first.id)
        await session.commit()
    header = t(
        "inbox.forum.opened",
        number=ticket.id,
        kind=_kind(t, ticket.kind),
        name=member.name if member and member.name else "?",
        code=member.member_code if member else "?",
    )
    if first is not None and (first.text or first.media_kind):
        name = member.name if member and member.name else "?"
        header += "\n\n" + t("inbox.forum.member_wrote", name=name, text=_body(first))
    await port.post(topic_id, header, message_media(first) if first else None)
    return 1
