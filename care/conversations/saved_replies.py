"""Saved replies (canned responses): answers staff send in one tap, managed by admins.

A saved reply has a short title (what staff see on its button) and the text the shopper gets.
Adding and deleting are audited; sending one is an ordinary staff answer.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.audit import audit
from care.core.clock import Clock
from storage.models import SavedReply

TITLE_MAX = 32
TEXT_MAX = 3000
MAX_SAVED = 50


class SavedReplyError(Exception):
    """``reason``: "usage" (no title or text), "title_too_long", "too_long", "duplicate",
    "full" (MAX_SAVED reached) or "not_found"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_saved_reply(raw: str) -> tuple[str, str]:
    """``"title | text"`` → (title, text); raises ``SavedReplyError``."""
    title, sep, text = raw.partition("|")
    title, text = title.strip(), text.strip()
    if not sep or not title or not text:
        raise SavedReplyError("usage")
    if len(title) > TITLE_MAX:
        raise SavedReplyError("title_too_long")
    if len(text) > TEXT_MAX:
        raise SavedReplyError("too_long")
    return title, text


async def list_saved_replies(session: AsyncSession) -> list[SavedReply]:
    """All saved replies, by title."""
    return list(await session.scalars(select(SavedReply).order_by(SavedReply.title)))


async def get_saved_reply(session: AsyncSession, reply_id: int) -> SavedReply | None:
    return await session.get(SavedReply, reply_id)


async def add_saved_reply(
    session: AsyncSession,
    clock: Clock,
    *,
    raw: str,
    staff_telegram_id: int,
    staff_role: str,
) -> SavedReply:
    """Add a saved reply from ``"title | text"``; audited. Raises ``SavedReplyError``."""
    title, text = parse_saved_reply(raw)
    existing = await list_saved_replies(session)
    if any(reply.title.casefold() == title.casefold() for reply in existing):
        raise SavedReplyError("duplicate")
    if len(existing) >= MAX_SAVED:
        raise SavedReplyError("full")
    reply = SavedReply(
        title=title, text=text, created_by=staff_telegram_id, created_at=clock.now()
    )
    session.add(reply)
    await session.flush()
    await audit(
        session,
        clock,
        actor_telegram_id=staff_telegram_id,
        actor_role=staff_role,
        action="saved_reply.add",
        target=f"saved_reply:{reply.id}",
        details={"title": title},
    )
    return reply


async def delete_saved_reply(
    session: AsyncSession,
    clock: Clock,
    *,
    reply_id: int,
    staff_telegram_id: int,
    staff_role: str,
) -> str:
    """Delete a saved reply; returns its title. Audited. Raises ``SavedReplyError``."""
    reply = await session.get(SavedReply, reply_id)
    if reply is None:
        raise SavedReplyError("not_found")
    title = reply.title
    await session.execute(delete(SavedReply).where(SavedReply.id == reply_id))
    await audit(
        session,
        clock,
        actor_telegram_id=staff_telegram_id,
        actor_role=staff_role,
        action="saved_reply.delete",
        target=f"saved_reply:{reply_id}",
        details={"title": title},
    )
    return title
