"""/start and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from care.clock import Clock
from care.config import CareConfig
from care.i18n import Translator
from care.members import TelegramIdentity, create_member
from storage.enums import MemberStatus
from storage.models import Member


async def cmd_start(
    message: Message,
    session: AsyncSession,
    member: Member | None,
    t: Translator,
    config: CareConfig,
    clock: Clock,
    shop_name: str,
) -> None:
    if member is not None:
        await message.answer(
            t("start.welcome_back", name=member.name or "", code=member.member_code)
        )
        return
    user = message.from_user
    assert user is not None  # private chats always have a sender
    identity = TelegramIdentity(
        user_id=user.id,
        chat_id=message.chat.id,
        first_name=user.first_name,
        last_name=user.last_name,
        username=user.username,
        language_code=user.language_code,
    )
    member = await create_member(session, identity, config, clock, status=MemberStatus.ACTIVE)
    await message.answer(
        t("start.welcome_new", shop=shop_name, name=member.name or "", code=member.member_code)
    )


async def cmd_help(message: Message, t: Translator) -> None:
    await message.answer(t("help.text"))


def build_router() -> Router:
    router = Router(name="shopper.start")
    router.message.register(cmd_start, CommandStart())
    router.message.register(cmd_help, Command("help"))
    return router
