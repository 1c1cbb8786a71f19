"""/invite: the member's personal invitation link and how many friends joined through it."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import Message
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.i18n import Translator, labels
from care.members.registration import count_referrals
from handlers.shopper.menu import Registered
from storage.models import Member


async def invite_link(bot: Bot, member_code: str) -> str:
    me = await bot.me()
    return f"https://t.me/{me.username}?start=ref_{member_code}"


async def cmd_invite(
    message: Message, bot: Bot, session: AsyncSession, member: Member, t: Translator
) -> None:
    link = await invite_link(bot, member.member_code)
    joined = await count_referrals(session, member.id)
    await message.answer(t("invite.text", link=link, count=joined))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(Registered())
    router.message.register(cmd_invite, Command("invite"))
    router.message.register(cmd_invite, F.text.in_(labels("menu.invite")))
    return router
