"""Till corrections: /void and /refund a receipt (admin, or the cashier who recorded it within
the void window), /adjust a member's points with a reason (admin). The work is in
``care.loyalty.corrections``; this module words the outcome for the staff member."""

from __future__ import annotations

import re

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from care.core.money import format_money
from care.loyalty.corrections import (
    Correction,
    CorrectionError,
    adjust_points,
    refund_purchase,
    void_purchase,
)
from care.loyalty.tiers import list_tiers, tier_name
from care.loyalty.till import TillInputError, parse_till_amount, till_member
from care.loyalty.wording import points_text
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt
from storage.enums import StaffRole

DELTA = re.compile(r"^[+-]\d{1,8}$")


def _refusal(staff: StaffContext, problem: CorrectionError, receipt: str) -> str:
    t, purchase = staff.t, problem.purchase
    receipt = excerpt(receipt, 64)
    if problem.reason == "already_voided":
        return t("rewards.fix.already_voided", receipt=receipt)
    if problem.reason == "not_allowed":
        return t("rewards.fix.not_yours", minutes=staff.config.void_window_minutes)
    if problem.reason == "too_much" and purchase is not None:
        return t(
            "rewards.fix.too_much",
            receipt=receipt,
            amount=format_money(purchase.amount_minor, purchase.currency),
            refundable=format_money(
                purchase.amount_minor - purchase.refunded_minor, purchase.currency
            ),
        )
    if problem.reason == "bad_amount":
        return t("rewards.fix.bad_amount", value=receipt)
    return t("rewards.fix.unknown_receipt", receipt=receipt)


async def _answer(staff: StaffContext, result: Correction, receipt: str, void: bool) -> str:
    t = staff.t
    purchase, member = result.purchase, result.member
    amount = format_money(result.refunded_minor, purchase.currency)
    if member is None:
        return t("rewards.fix.member_gone", receipt=receipt)
    tiers = {tier.code: tier for tier in await list_tiers(staff.session)}
    head = "rewards.fix.voided" if void else "rewards.fix.refunded"
    lines = [
        t(head, receipt=receipt, amount=amount, name=member.name or "", code=member.member_code),
        t(
            "rewards.fix.points_back",
            points=points_text(t, result.points_taken),
            balance=f"{result.balance:,}",
            tier=tier_name(tiers[result.tier_code], t.locale),
        ),
    ]
    if result.points_short:
        lines.append(t("rewards.fix.points_short", short=points_text(t, result.points_short)))
    if result.downgraded:
        lines.append(
            t(
                "rewards.fix.tier_down",
                previous=tier_name(tiers[result.previous_tier_code], t.locale),
                tier=tier_name(tiers[result.tier_code], t.locale),
            )
        )
    return "\n".join(lines)


async def cmd_void(message: Message, command: CommandObject, staff: StaffContext) -> None:
    words = (command.args or "").split()
    if len(words) != 1:
        await message.answer(staff.t("rewards.fix.usage_void"))
        return
    try:
        result = await void_purchase(
            staff.session, staff.config, staff.clock, receipt=words[0],
            staff_telegram_id=staff.user_id, staff_role=staff.role,
        )  # fmt: skip
    except CorrectionError as problem:
        await message.answer(_refusal(staff, problem, words[0]))
        return
    await message.answer(await _answer(staff, result, words[0], void=True))


async def cmd_refund(message: Message, command: CommandObject, staff: StaffContext) -> None:
    words = (command.args or "").split()
    if len(words) != 2:
        await message.answer(staff.t("rewards.fix.usage_refund"))
        return
    try:
        amount = parse_till_amount(words[1], staff.config)
    except TillInputError:
        await message.answer(staff.t("rewards.fix.bad_amount", value=excerpt(words[1], 40)))
        return
    try:
        result = await refund_purchase(
            staff.session, staff.config, staff.clock, receipt=words[0], amount_minor=amount,
            staff_telegram_id=staff.user_id, staff_role=staff.role,
        )  # fmt: skip
    except CorrectionError as problem:
        await message.answer(_refusal(staff, problem, words[0]))
        return
    await message.answer(await _answer(staff, result, words[0], void=False))


async def cmd_adjust(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t = staff.t
    words = (command.args or "").split(maxsplit=2)
    if len(words) < 2:
        await message.answer(t("rewards.fix.usage_adjust"))
        return
    if not DELTA.match(words[1]):
        await message.answer(t("rewards.fix.bad_delta", value=excerpt(words[1], 20)))
        return
    if len(words) < 3:
        await message.answer(t("rewards.fix.no_reason"))
        return
    try:
        member = await till_member(staff.session, words[0])
    except TillInputError as problem:
        key = "till.ambiguous_member" if problem.reason == "ambiguous_member" else None
        await message.answer(t(key or "till.unknown_member", query=excerpt(words[0], 40)))
        return
    delta = int(words[1])
    try:
        result = await adjust_points(
            staff.session, staff.config, staff.clock, member=member, delta=delta,
            reason=words[2], staff_telegram_id=staff.user_id, staff_role=staff.role,
        )  # fmt: skip
    except CorrectionError as problem:
        if problem.reason == "not_enough":
            text = t(
                "rewards.fix.not_enough",
                name=member.name or member.member_code,
                balance=points_text(t, member.points_balance),
                points=points_text(t, abs(delta)),
            )
        elif problem.reason == "no_reason":
            text = t("rewards.fix.no_reason")
        else:
            text = t("rewards.fix.bad_delta", value=words[1])
        await message.answer(text)
        return
    await message.answer(
        t(
            "rewards.fix.adjusted",
            delta=f"{'+' if delta > 0 else '−'}{points_text(t, abs(delta))}",
            name=member.name or "",
            code=member.member_code,
            balance=f"{result.balance:,}",
            reason=excerpt(words[2], 200),
        )
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(cmd_void, Command("void"), MinRole(StaffRole.CASHIER))
    router.message.register(cmd_refund, Command("refund"), MinRole(StaffRole.CASHIER))
    router.message.register(cmd_adjust, Command("adjust"), MinRole(StaffRole.ADMIN))
    return router
