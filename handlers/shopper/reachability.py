"""my_chat_member: a shopper who blocks the bot is unreachable at once; unblocking undoes it."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter
from aiogram.types import ChatMemberUpdated
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.members.registration import set_reachable


async def on_blocked(event: ChatMemberUpdated, session: AsyncSession, clock: Clock) -> None:
    await set_reachable(session, clock, event.from_user.id, reachable=False)


async def on_unblocked(event: ChatMemberUpdated, session: AsyncSession, clock: Clock) -> None:
    await set_reachable(session, clock, event.from_user.id, reachable=True)


def build_router() -> Router:
    router = Router(name=__name__)
    router.my_chat_member.filter(F.chat.type == ChatType.PRIVATE)
    router.my_chat_member.register(on_blocked, ChatMemberUpdatedFilter(KICKED))
    router.my_chat_member.register(on_unblocked, ChatMemberUpdatedFilter(MEMBER))
    return router
