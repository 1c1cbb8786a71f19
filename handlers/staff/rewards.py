"""The rewards catalogue, managed in chat by admins: /reward_add, /reward_list, /reward_off.

One command per change (a reward is one line: cost, kind, value, names), so an admin can set up
a catalogue from a phone in a minute; the shopper side is handlers/shopper/rewards.py.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from care.loyalty.rewards import (
    MAX_COST,
    NAME_LIMIT,
    RewardError,
    all_rewards,
    create_reward,
    reward_name,
    switch_off,
)
from care.loyalty.till import TillInputError, parse_till_amount
from care.loyalty.wording import offer_gives, points_text
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt
from storage.enums import OfferKind, StaffRole

KINDS = {"amount": OfferKind.AMOUNT_OFF, "percent": OfferKind.PERCENT_OFF, "gift": OfferKind.GIFT}


async def cmd_reward_add(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t = staff.t
    words = (command.args or "").split(maxsplit=2)
    if len(words) < 3:
        await message.answer(t("rewards.admin.usage_add"))
        return
    if not words[0].isdigit() or not 1 <= int(words[0]) <= MAX_COST:
        await message.answer(
            t("rewards.admin.bad_points", value=excerpt(words[0], 20), limit=f"{MAX_COST:,}")
        )
        return
    kind = KINDS.get(words[1].lower())
    if kind is None:
        await message.answer(t("rewards.admin.bad_kind", value=excerpt(words[1], 20)))
        return
    rest = words[2]
    value = 0
    if kind != OfferKind.GIFT:
        typed, _, rest = rest.partition(" ")
        try:
            value = (
                int(typed.rstrip("%"))
                if kind == OfferKind.PERCENT_OFF
                else parse_till_amount(typed, staff.config)
            )
        except (TillInputError, ValueError):
            await message.answer(t("rewards.admin.bad_value", value=excerpt(typed, 20)))
            return
    name_zh, bar, name_en = rest.partition("|")
    if not bar:  # one name for both languages
        name_en = name_zh
    try:
        reward = await create_reward(
            staff.session, staff.clock, staff.config, name_zh=name_zh, name_en=name_en,
            points_cost=int(words[0]), kind=kind, value=value, created_by=staff.user_id,
        )  # fmt: skip
    except RewardError as problem:
        if problem.reason == "no_name":
            key = "rewards.admin.long_name" if rest.strip() else "rewards.admin.no_name"
            await message.answer(t(key, limit=NAME_LIMIT))
        else:
            await message.answer(t("rewards.admin.bad_value", value=str(value)))
        return
    await staff.audit(
        "reward.add",
        f"reward:{reward.id}",
        {"points_cost": reward.points_cost, "kind": str(kind), "value": value},
    )
    await message.answer(
        t(
            "rewards.admin.added",
            id=reward.id,
            name_zh=reward.name_zh or "—",
            name_en=reward.name_en or "—",
            gives=offer_gives(reward.offer, t),
            cost=points_text(t, reward.points_cost),
        )
    )


async def cmd_reward_list(message: Message, staff: StaffContext) -> None:
    t = staff.t
    rewards, counts = await all_rewards(staff.session)
    if not rewards:
        await message.answer(t("rewards.admin.list_empty"))
        return
    lines = [t("rewards.admin.list_title")]
    for reward in rewards:
        lines.append(
            t(
                "rewards.admin.list_line",
                id=reward.id,
                state=t.plain(
                    "rewards.admin.state_on" if reward.is_active else "rewards.admin.state_off"
                ),
                name_zh=reward.name_zh or "—",
                name_en=reward.name_en or "—",
                gives=offer_gives(reward.offer, t),
                cost=points_text(t, reward.points_cost),
                count=f"{counts.get(reward.id, 0):,}",
            )
        )
    lines.append(t("rewards.admin.list_hint"))
    await message.answer("\n".join(lines))


async def cmd_reward_off(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t = staff.t
    typed = (command.args or "").strip().lstrip("#")
    if not typed.isdigit():
        await message.answer(t("rewards.admin.usage_off"))
        return
    try:
        reward = await switch_off(staff.session, int(typed))
    except RewardError as problem:
        key = "rewards.admin.off_already" if problem.reason == "inactive" else None
        await message.answer(t(key or "rewards.admin.off_unknown", id=typed))
        return
    await staff.audit("reward.off", f"reward:{reward.id}")
    await message.answer(t("rewards.admin.off", id=reward.id, name=reward_name(reward, t.locale)))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    admin = MinRole(StaffRole.ADMIN)
    router.message.register(cmd_reward_add, Command("reward_add"), admin)
    router.message.register(cmd_reward_list, Command("reward_list"), admin)
    router.message.register(cmd_reward_off, Command("reward_off"), admin)
    return router
