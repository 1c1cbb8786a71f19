"""At the till: /purchase records a receipt, /redeem uses a coupon.

A purchase of ``LARGE_PURCHASE_CONFIRM`` or more is held until the cashier presses Confirm: the
pending purchase waits in the cashier's FSM data (not in the callback, which is limited to 64
bytes and would have to carry the receipt), keyed by the id of the message that typed it, so an
old confirmation button, a second tap or a press after ten minutes cannot record it.
"""

from __future__ import annotations

import re
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from care.core.codes import display_code
from care.core.config import CareConfig
from care.core.formatting import category_label, format_count, join_list
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
from storage.repos.members import MemberRepo

MAX_WORDS = 4
PENDING_KEY = "till_pending"
# A confirmation older than this is stale: the customer has long left the till.
CONFIRM_WITHIN = timedelta(minutes=10)


class CDTill(CallbackData, prefix="tl"):
    action: str  # "ok" records the pending purchase, "no" drops it
    nonce: int  # the message id of the /purchase that is waiting


_LEAD_GROUP = re.compile(r"^[¥￥$€£]?\d{1,3}$")
_NEXT_GROUP = re.compile(r"^\d{3}$")
_LAST_GROUP = re.compile(r"^\d{3}([.,]\d{1,2})?(元)?$")


def join_digit_groups(words: list[str]) -> list[str]:
    """``CODE 1 250 fresh`` → ``CODE 1250 fresh``: an amount typed with spaces between its
    thousands arrives as several words. A category or receipt is never a bare group of three
    digits after the amount, so such words belong to the amount."""
    if len(words) < 3 or not _LEAD_GROUP.match(words[1]):
        return words
    end = 2
    while end < len(words) and _NEXT_GROUP.match(words[end]):
        end += 1
    if end < len(words) and _LAST_GROUP.match(words[end]):
        end += 1
    if end == 2:
        return words
    return [words[0], "".join(words[1:end]), *words[end:]]


def _category_word(t: Translator, category: str) -> str:
    # In English the category key is the word a cashier types ("grocery"); in Chinese the
    # category's name (生鲜食品), which the till accepts too.
    return category if t.locale == "en" else category_label(t, category)


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
        words = join_list((_category_word(t, c) for c in config.categories), t.locale)
        return t("till.unknown_category", value=value, categories=words)
    if problem.reason == "bad_receipt":
        return t("till.bad_receipt")
    if problem.reason == "ambiguous_amount":
        return t("till.ambiguous_amount", value=value)
    return t("till.bad_amount", value=value)


async def cmd_purchase(
    message: Message, command: CommandObject, staff: StaffContext, state: FSMContext
) -> None:
    t, config, clock = staff.t, staff.config, staff.clock
    words = join_digit_groups((command.args or "").split())
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
    if config.large_purchase_minor and amount >= config.large_purchase_minor:
        pending = {
            "nonce": message.message_id,
            "at": clock.now().isoformat(),
            "member_id": member.id,
            "amount": amount,
            "category": category,
            "receipt": receipt,
        }
        await state.update_data({PENDING_KEY: pending})
        await message.answer(
            t(
                "till.confirm_large",
                amount=format_money(amount, config.currency),
                name=member.name or member.member_code,
                code=member.member_code,
            ),
            reply_markup=_confirm_markup(t, message.message_id),
        )
        return
    await message.answer(await _record(staff, member, amount, category, receipt))


def _confirm_markup(t: Translator, nonce: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t.plain("till.confirm_yes"), callback_data=CDTill(action="ok", nonce=nonce)
    )
    builder.button(text=t.plain("till.confirm_no"), callback_data=CDTill(action="no", nonce=nonce))
    builder.adjust(2)
    return builder.as_markup()


async def _record(
    staff: StaffContext, member: Member, amount: int, category: str | None, receipt: str
) -> str:
    """Book the purchase and return the answer for the cashier."""
    t, config = staff.t, staff.config
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
            return t("till.member_deleted")
        if exc.reason == "unknown_member":
            return t("till.unknown_member", query=member.member_code)
        return t("till.bad_amount", value=format_money(amount, config.currency))
    if result.duplicate:
        return t("till.duplicate", receipt=receipt)
    return await _purchase_answer(staff, member, amount, category, receipt, result)


async def on_confirm(
    callback: CallbackQuery, callback_data: CDTill, state: FSMContext, staff: StaffContext
) -> None:
    t, clock = staff.t, staff.clock
    data = await state.get_data()
    pending: dict[str, Any] | None = data.get(PENDING_KEY)
    if not pending or pending.get("nonce") != callback_data.nonce:
        await callback.answer(t.plain("till.confirm_stale"), show_alert=True)
        await _drop_buttons(callback)
        return
    await state.update_data({PENDING_KEY: None})
    if clock.now() - datetime.fromisoformat(str(pending["at"])) > CONFIRM_WITHIN:
        await callback.answer(t.plain("till.confirm_stale"), show_alert=True)
        await _drop_buttons(callback)
        return
    await callback.answer()
    await _drop_buttons(callback)
    if not isinstance(callback.message, Message):
        return
    if callback_data.action != "ok":
        await callback.message.answer(t("till.confirm_cancelled"))
        return
    member = await MemberRepo(staff.session).get(int(pending["member_id"]))
    if member is None:
        await callback.message.answer(t("till.member_deleted"))
        return
    await callback.message.answer(
        await _record(
            staff,
            member,
            int(pending["amount"]),
            pending["category"],
            str(pending["receipt"]),
        )
    )


async def _drop_buttons(callback: CallbackQuery) -> None:
    # Best effort: a message too old to edit, or already without buttons, is no failure.
    if isinstance(callback.message, Message):
        with suppress(TelegramBadRequest):
            await callback.message.edit_reply_markup(reply_markup=None)


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
            category=(
                t.plain("till.recorded_category", category=_category_word(t, category))
                if category
                else ""
            ),
            earned=format_count(result.points_earned),
            balance=format_count(result.points_balance),
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
    t, config = staff.t, staff.config
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
                when=local_time(when, config) if when else t.plain("till.unknown_when"),
            )
        )
        return
    when = coupon.expires_at
    await message.answer(
        t(
            "till.expired",
            code=code,
            when=local_time(when, config) if when else t.plain("till.unknown_when"),
        )
    )


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(cmd_purchase, Command("purchase"), MinRole(StaffRole.CASHIER))
    router.message.register(cmd_redeem, Command("redeem"), MinRole(StaffRole.CASHIER))
    router.callback_query.register(on_confirm, CDTill.filter(), MinRole(StaffRole.CASHIER))
    return router
