"""At the till: /purchase records a receipt, /redeem uses a coupon."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from care.core.codes import display_code
from care.core.config import CareConfig
from care.core.i18n import Translator
from care.core.money import format_money
from care.loyalty.offers import describe_offer
from care.loyalty.purchases import MAX_AMOUNT_MINOR, PurchaseError, PurchaseResult
from care.loyalty.tiers import list_tiers, tier_name
from care.loyalty.till import (
    TillInputError,
    check_receipt,
    coupon_holder,
    match_category,
    parse_till_amount,
    record_till_purchase,
    redeem_at_till,
    till_member,
)
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt, local_time
from storage.enums import StaffRole
from storage.models import Member

MAX_WORDS = 4


def _refusal(t: Translator, config: CareConfig, problem: TillInputError) -> str:
    value = excerpt(problem.value, 40)
    if problem.reason == "unknown_member":
        return t("till.unknown_member", query=value)
    if problem.reason == "ambiguous_member":
        return t("till.ambiguous_member", query=value)
    if problem.reason == "absurd_amount":
        return t(
            "till.absurd_amount",
            amount=value,
            limit=format_money(MAX_AMOUNT_MINOR, config.currency),
        )
    if problem.reason == "unknown_category":
        return t("till.unknown_category", value=value, categories=", ".join(config.categories))
    if problem.reason == "bad_receipt":
        return t("till.bad_receipt")
    return t("till.bad_amount", value=value)


async def cmd_purchase(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t, config = staff.t, staff.config
    words = (command.args or "").split()
    if len(words) < 2:
        await message.answer(t("till.usage_purchase"))
        return
    if len(words) > MAX_WORDS:
        await message.answer(t("till.too_many_words", usage=t.plain("till.usage_purchase")))
        return
    try:
        amount = parse_till_amount(words[1], config)
        category = match_category(words[2] if len(words) > 2 else None, config)
        # Without a receipt number the message itself is the receipt: a re-delivered
        # update can then never count the same purchase twice.
        receipt = check_receipt(words[3] if len(words) > 3 else None) or (
            f"tg-{message.chat.id}-{message.message_id}"
        )
        member = await till_member(staff.session, words[0])
    except TillInputError as problem:
        await message.answer(_refusal(t, config, problem))
        return
    try:
        result = await record_till_purchase(
            staff.session,
            config,
            staff.clock,
            member=member,
            amount_minor=amount,
            category=category,
            receipt_id=receipt,
            staff_telegram_id=staff.user_id,
            staff_role=staff.role,
        )
    except PurchaseError as exc:
        if exc.reason == "member_deleted":
            await message.answer(t("till.member_deleted"))
        elif exc.reason == "unknown_member":
            await message.answer(t("till.unknown_member", query=excerpt(words[0], 40)))
        else:
            await message.answer(t("till.bad_amount", value=excerpt(words[1], 40)))
        return
    if result.duplicate:
        await message.answer(t("till.duplicate", receipt=receipt))
        return
    await message.answer(await _purchase_answer(staff, member, amount, category, receipt, result))


async def _purchase_answer(
    staff: StaffContext,
    member: Member,
    amount: int,
    category: str | None,
    receipt: str,
    result: PurchaseResult,
) -> str:
    t, config = staff.t, staff.config
    tiers = {tier.code: tier for tier in await list_tiers(staff.session)}

    def name_of(code: str) -> str:
        tier = tiers.get(code)
        return tier_name(tier, t.locale) if tier is not None else code

    lines = [
        t(
            "till.recorded",
            amount=format_money(amount, config.currency),
            name=member.name or member.member_code,
            code=member.member_code,
            category=t.plain("till.recorded_category", category=category) if category else "",
            earned=f"{result.points_earned:,}",
            balance=f"{result.points_balance:,}",
            tier=name_of(result.tier_code),
            receipt=receipt,
        )
    ]
    if result.first_purchase:
        lines.append(t("till.first_purchase"))
    if result.tier_code != result.previous_tier_code:
        lines.append(
            t(
                "till.upgraded",
                previous=name_of(result.previous_tier_code),
                tier=name_of(result.tier_code),
            )
        )
    return "\n".join(lines)


async def cmd_redeem(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t = staff.t
    typed = " ".join((command.args or "").split())
    if not typed:
        await message.answer(t("till.usage_redeem"))
        return
    result = await redeem_at_till(
        staff.session,
        staff.clock,
        code=typed,
        staff_telegram_id=staff.user_id,
        staff_role=staff.role,
    )
    coupon = result.coupon
    if result.status == "not_found" or coupon is None:
        await message.answer(t("till.not_found", code=excerpt(typed, 24)))
        return
    code = display_code(coupon.code)
    if result.status == "redeemed":
        owner = await coupon_holder(staff.session, coupon)
        await message.answer(
            t(
                "till.redeemed",
                code=code,
                offer=describe_offer(coupon.offer, t),
                name=(owner.name if owner and owner.name else t.plain("m360.none")),
                member_code=owner.member_code if owner else t.plain("m360.none"),
            )
        )
        return
    if result.status == "already_used":
        when = coupon.redeemed_at
        await message.answer(
            t(
                "till.already_used",
                code=code,
                when=local_time(when, staff.config) if when else t.plain("till.unknown_when"),
            )
        )
        return
    when = coupon.expires_at
    await message.answer(
        t(
            "till.expired",
            code=code,
            when=local_time(when, staff.config) if when else t.plain("till.unknown_when"),
        )
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(cmd_purchase, Command("purchase"), MinRole(StaffRole.CASHIER))
    router.message.register(cmd_redeem, Command("redeem"), MinRole(StaffRole.CASHIER))
    return router
