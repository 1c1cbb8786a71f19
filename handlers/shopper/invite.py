"""/invite: the member's personal invitation link, the reward it earns, a button that shares
it, and how many friends joined through it."""

from __future__ import annotations

from urllib.parse import quote

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import Translator, labels
from care.loyalty.offers import offer_usable, rule_offer
from care.loyalty.wording import offer_gives
from care.members.registration import count_referrals
from handlers.shopper.menu import Registered
from storage.models import Member

REFERRAL_RULE = "referral_reward"


async def invite_link(bot: Bot, member_code: str) -> str:
    me = await bot.me()
    return f"https://t.me/{me.username}?start=ref_{member_code}"


async def reward_text(
    session: AsyncSession, clock: Clock, config: CareConfig, t: Translator
) -> str:
    """What the inviter gets (the referral rule's offer), or "" when the rule is off."""
    if REFERRAL_RULE in config.rules_disabled:
        return ""
    offer = await rule_offer(session, clock, config, "referral")
    if not offer_usable(offer, clock.now()):
        return ""
    # Trusted catalogue HTML with the value escaped, going into another text: keep it markup.
    return Markup(t("rewards.invite.reward", reward=offer_gives(offer, t)))


def share_button(t: Translator, link: str, shop: str) -> InlineKeyboardMarkup:
    """Telegram's share sheet with the link and a line of text (works in every client)."""
    text = t.plain("rewards.invite.share_text", shop=shop)
    url = f"https://t.me/share/url?url={quote(link, safe='')}&text={quote(text, safe='')}"
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t.plain("rewards.invite.share"), url=url)]]
    )


async def cmd_invite(
    message: Message,
    bot: Bot,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    link = await invite_link(bot, member.member_code)
    joined = await count_referrals(session, member.id)
    reward = await reward_text(session, clock, config, t)
    await message.answer(
        t("rewards.invite.text", reward=reward, link=link, count=joined),
        reply_markup=share_button(t, link, config.shop_name),
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(Registered())
    router.message.register(cmd_invite, Command("invite"))
    router.message.register(cmd_invite, F.text.in_(labels("menu.invite")))
    return router
