"""/rewards and the menu's rewards button: spend points on a coupon, after a confirmation.

The list shows every reward with what it gives and costs; a button per reward the shopper can
afford opens "Spend N points on X?", and only "Yes" spends them (``care.loyalty.rewards``:
points and coupon in one unit of work, never below zero).
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.codes import display_code
from care.core.formatting import format_day
from care.core.i18n import Translator, labels
from care.core.quiet_hours import member_zone
from care.loyalty.rewards import (
    RewardError,
    catalogue,
    get_reward,
    redeem_reward,
    reward_name,
)
from care.loyalty.wording import offer_gives, points_text
from handlers.shopper.keyboards import show
from handlers.shopper.menu import Registered
from storage.models import Member, Reward

BUTTON_NAME_LIMIT = 40


class CDReward(CallbackData, prefix="rw"):
    action: str  # pick | yes | no
    reward: int
    # The balance the confirmation was shown with: a second tap on "Yes" (after the points
    # moved) is recognised as stale instead of buying the reward twice.
    balance: int = -1


def _line(t: Translator, reward: Reward) -> str:
    return t(
        "rewards.shop.line",
        name=reward_name(reward, t.locale),
        gives=offer_gives(reward.offer, t),
        cost=points_text(t, reward.points_cost),
    )


async def cmd_rewards(
    message: Message, session: AsyncSession, member: Member, t: Translator, clock: Clock
) -> None:
    rewards = await catalogue(session, clock)
    balance = member.points_balance
    if not rewards:
        await message.answer(t("rewards.shop.empty", balance=points_text(t, balance)))
        return
    lines = [t("rewards.shop.title", balance=points_text(t, balance))]
    lines.extend(_line(t, reward) for reward in rewards)
    builder = InlineKeyboardBuilder()
    for reward in rewards:
        if reward.points_cost <= balance:
            builder.button(
                text=t.plain(
                    "rewards.shop.button",
                    name=reward_name(reward, t.locale)[:BUTTON_NAME_LIMIT],
                    cost=points_text(t, reward.points_cost),
                ),
                callback_data=CDReward(action="pick", reward=reward.id),
            )
    builder.adjust(1)
    cheapest = rewards[0].points_cost
    if cheapest > balance:
        lines.append(t("rewards.shop.none_affordable", missing=points_text(t, cheapest - balance)))
    markup = builder.as_markup() if cheapest <= balance else None
    await message.answer("\n".join(lines), reply_markup=markup)


def _confirm_keyboard(t: Translator, reward_id: int, balance: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t.plain("rewards.shop.yes"),
        callback_data=CDReward(action="yes", reward=reward_id, balance=balance),
    )
    builder.button(
        text=t.plain("rewards.shop.no"), callback_data=CDReward(action="no", reward=reward_id)
    )
    return builder.as_markup()


async def on_reward(
    callback: CallbackQuery,
    callback_data: CDReward,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
) -> None:
    message = callback.message if isinstance(callback.message, Message) else None
    text, markup = await _step(callback_data, session, member, t, clock)
    if message is not None:
        await show(message, text, markup)
    elif callback.bot is not None:
        await callback.bot.send_message(callback.from_user.id, text, reply_markup=markup)
    await callback.answer()


async def _step(
    data: CDReward, session: AsyncSession, member: Member, t: Translator, clock: Clock
) -> tuple[str, InlineKeyboardMarkup | None]:
    if data.action == "no":
        return t("rewards.shop.cancelled"), None
    reward = await get_reward(session, data.reward)
    if reward is None or reward not in await catalogue(session, clock):
        return t("rewards.shop.gone"), None
    name, cost = reward_name(reward, t.locale), points_text(t, reward.points_cost)
    balance = member.points_balance
    not_enough = t(
        "rewards.shop.not_enough", name=name, cost=cost, balance=points_text(t, balance)
    )
    if data.action == "pick":
        if reward.points_cost > balance:
            return not_enough, None
        text = t(
            "rewards.shop.confirm",
            cost=cost,
            name=name,
            gives=offer_gives(reward.offer, t),
            after=points_text(t, balance - reward.points_cost),
        )
        return text, _confirm_keyboard(t, reward.id, balance)
    if data.balance != balance:
        return t("rewards.shop.stale"), None
    try:
        done = await redeem_reward(
            session, clock, member_id=member.id, reward_id=reward.id, locale=t.locale
        )
    except RewardError as problem:
        return (not_enough if problem.reason == "not_enough" else t("rewards.shop.gone")), None
    until = ""
    if done.coupon.expires_at is not None:
        day = done.coupon.expires_at.astimezone(member_zone(member.timezone)).date()
        until = t.plain("rewards.shop.until", date=format_day(day, t.locale, with_year=True))
    text = t(
        "rewards.shop.done",
        code=display_code(done.coupon.code),
        gives=offer_gives(reward.offer, t),
        until=until,
        balance=points_text(t, done.balance),
    )
    return text, None


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(Registered())
    router.callback_query.filter(Registered())
    router.message.register(cmd_rewards, Command("rewards"))
    router.message.register(cmd_rewards, F.text.in_(labels("menu.rewards")))
    router.callback_query.register(on_reward, CDReward.filter())
    return router
