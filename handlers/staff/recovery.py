"""Service recovery in the console: the low-score alert's "write to the member" button opens
(or continues) their conversation, and goodwill — points or a coupon, with a reason — is given
from a conversation or from /member in a short flow (what → how many / which coupon → why →
confirm). Cancel and /cancel leave it with nothing given. The work is in
``care.conversations.followups`` and ``care.console.goodwill``."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from care.console.goodwill import (
    MAX_GOODWILL_POINTS,
    GoodwillError,
    check_reason,
    goodwill_offers,
    grant_coupon,
    grant_points,
    grantable_member,
    may_grant,
    offer_label,
    parse_points,
)
from care.conversations.followups import open_followup
from care.conversations.inbox import ticket_thread
from care.conversations.surveys import FOLLOWUP_PREFIX, parse_followup
from care.conversations.tickets import TicketError
from care.core.codes import display_code
from care.core.formatting import format_count
from care.core.i18n import Translator
from care.loyalty.corrections import REASON_LIMIT
from care.loyalty.wording import points_text
from handlers.shopper.prompts import remember_prompt
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt
from handlers.staff.inbox_views import render_thread
from handlers.staff.keyboards import CDGoodwill, markup
from storage.enums import StaffRole
from storage.models import Member
from storage.repos.loyalty import OfferRepo

# A refusal after the confirmation, by GoodwillError reason (the rest have a key of their own).
REFUSALS = {"bad_points": "bad_points_given", "reason_too_long": "no_reason"}


class GoodwillFlow(StatesGroup):
    choose = State()  # points or a coupon, and which coupon: buttons only
    points = State()
    reason = State()
    confirm = State()


def _who(member: Member) -> str:
    return member.name or member.member_code


def _button(t: Translator, key: str, data: CDGoodwill) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=t.plain(key), callback_data=data.pack())


def _cancel_row(t: Translator, member_id: int) -> list[InlineKeyboardButton]:
    return [_button(t, "goodwill.cancel_button", CDGoodwill(action="cancel", member_id=member_id))]


async def _edit(callback: CallbackQuery, text: str, keyboard: InlineKeyboardMarkup | None) -> None:
    if isinstance(callback.message, Message):
        await callback.message.edit_text(text, reply_markup=keyboard)


async def _stale(callback: CallbackQuery, t: Translator) -> None:
    """A button of a flow that is over (given, cancelled, left or replaced): say so and take
    the buttons off, but keep the message's text — it may be the record of what was given."""
    await callback.answer(t.plain("goodwill.expired"), show_alert=True)
    if isinstance(callback.message, Message) and callback.message.reply_markup is not None:
        with suppress(TelegramBadRequest):  # already without buttons, or too old to edit
            await callback.message.edit_reply_markup(reply_markup=None)


async def _gift(staff: StaffContext, data: dict[str, Any]) -> str:
    """What is about to be given, as the staff member reads it."""
    if data.get("gw_kind") == "points":
        return points_text(staff.t, int(data.get("gw_points", 0)))
    offer = await OfferRepo(staff.session).get(int(data.get("gw_offer", 0)))
    gift = offer_label(offer, staff.locale) if offer is not None else "?"
    return staff.t.plain("goodwill.coupon_of", offer=gift)


async def on_followup(callback: CallbackQuery, staff: StaffContext) -> None:
    """The low-score alert's button: the member's conversation, opened or continued, below."""
    t = staff.t
    response_id = parse_followup(callback.data) or 0
    try:
        followup = await open_followup(
            staff.session, staff.clock, response_id=response_id,
            staff_telegram_id=staff.user_id, staff_role=staff.role,
        )  # fmt: skip
    except TicketError as problem:
        key = "goodwill.followup.member_gone" if problem.reason == "member_gone" else None
        await callback.answer(t.plain(key or "goodwill.followup.not_found"), show_alert=True)
        return
    thread = await ticket_thread(staff.session, followup.ticket.id)
    assert thread is not None
    text, keyboard = render_thread(
        thread, t, staff.config, 0, staff.user_id, goodwill=may_grant(staff.role)
    )
    await callback.answer(
        t.plain(
            f"goodwill.followup.{followup.how}",
            number=followup.ticket.id,
            name=_who(followup.member),
        )
    )
    if callback.bot is not None:
        # As a new message in the staff member's own chat: the alert may sit in the staff group.
        await callback.bot.send_message(callback.from_user.id, text, reply_markup=keyboard)


async def on_goodwill(
    callback: CallbackQuery, callback_data: CDGoodwill, state: FSMContext, staff: StaffContext
) -> None:
    t, action, member_id = staff.t, callback_data.action, callback_data.member_id
    if not may_grant(staff.role):  # the role again: a button outlives a demotion
        await callback.answer(t.plain("goodwill.not_allowed"), show_alert=True)
        return
    if action == "cancel":
        if (await state.get_data()).get("gw_member") != member_id:  # not this flow's state
            await _stale(callback, t)
            return
        await state.clear()
        await callback.answer()
        await _edit(callback, t("goodwill.cancelled"), None)
        return
    try:
        member = await grantable_member(staff.session, member_id)
    except GoodwillError:
        await state.clear()
        await callback.answer(t.plain("goodwill.member_gone"), show_alert=True)
        return
    if action == "start":
        await state.clear()
        await state.set_state(GoodwillFlow.choose)
        await state.update_data(gw_member=member.id, gw_ticket=callback_data.ticket_id)
        await callback.answer()
        keyboard = markup(
            [
                [
                    _button(
                        t,
                        "goodwill.points_button",
                        CDGoodwill(action="points", member_id=member.id),
                    ),
                    _button(
                        t,
                        "goodwill.coupon_button",
                        CDGoodwill(action="coupon", member_id=member.id),
                    ),
                ],
                _cancel_row(t, member.id),
            ]
        )
        if isinstance(callback.message, Message):
            choose = await callback.message.answer(
                t("goodwill.choose", name=_who(member), code=member.member_code),
                reply_markup=keyboard,
            )
            await remember_prompt(state, choose)
        return
    data = await state.get_data()
    if data.get("gw_member") != member.id:  # a button of a flow that is over
        await _stale(callback, t)
        return
    if action == "points":
        await state.set_state(GoodwillFlow.points)
        await callback.answer()
        prompt = t("goodwill.ask_points", name=_who(member), max=format_count(MAX_GOODWILL_POINTS))
        await _edit(callback, prompt, markup([_cancel_row(t, member.id)]))
    elif action == "coupon":
        await callback.answer()
        offers = await goodwill_offers(staff.session, staff.clock)
        if not offers:
            await _edit(callback, t("goodwill.no_offers"), markup([_cancel_row(t, member.id)]))
            return
        rows = [
            [
                InlineKeyboardButton(
                    text=excerpt(offer_label(offer, staff.locale), 60),
                    callback_data=CDGoodwill(
                        action="offer", member_id=member.id, value=offer.id
                    ).pack(),
                )
            ]
            for offer in offers
        ]
        await _edit(
            callback,
            t("goodwill.pick_offer", name=_who(member)),
            markup([*rows, _cancel_row(t, member.id)]),
        )
    elif action == "offer":
        await state.update_data(gw_kind="coupon", gw_offer=callback_data.value)
        await state.set_state(GoodwillFlow.reason)
        await callback.answer()
        gift = await _gift(staff, await state.get_data())
        prompt = t("goodwill.ask_reason", name=_who(member), gift=gift, limit=REASON_LIMIT)
        await _edit(callback, prompt, markup([_cancel_row(t, member.id)]))
    elif action == "give":
        await _give(callback, state, staff, member, data)
    else:
        await callback.answer()


async def _give(
    callback: CallbackQuery,
    state: FSMContext,
    staff: StaffContext,
    member: Member,
    data: dict[str, Any],
) -> None:
    t = staff.t
    if await state.get_state() != GoodwillFlow.confirm.state:
        await _stale(callback, t)
        return
    # Leave the flow before writing: the FSM storage commits on its own connection, which
    # must not wait behind this update's write transaction.
    await state.clear()
    common: dict[str, Any] = {
        "member_id": member.id,
        "reason": str(data.get("gw_reason", "")),
        "staff_telegram_id": staff.user_id,
        "staff_role": staff.role,
        "ticket_id": int(data.get("gw_ticket", 0)) or None,
    }
    try:
        if data.get("gw_kind") == "points":
            grant = await grant_points(
                staff.session, staff.config, staff.clock,
                points=int(data.get("gw_points", 0)), **common,
            )  # fmt: skip
            text = t(
                "goodwill.given_points",
                name=_who(member),
                points=points_text(t, grant.points),
                balance=points_text(t, grant.balance),
            )
        else:
            grant = await grant_coupon(
                staff.session, staff.config, staff.clock,
                offer_id=int(data.get("gw_offer", 0)), **common,
            )  # fmt: skip
            assert grant.offer is not None and grant.coupon_code is not None
            text = t(
                "goodwill.given_coupon",
                name=_who(member),
                offer=offer_label(grant.offer, staff.locale),
                code=display_code(grant.coupon_code),
            )
    except GoodwillError as problem:
        await callback.answer(
            t.plain(f"goodwill.{REFUSALS.get(problem.reason, problem.reason)}"), show_alert=True
        )
        await _edit(callback, t("goodwill.cancelled"), None)
        return
    await callback.answer()
    await _edit(callback, text, None)


async def on_points(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    data = await state.get_data()
    member_id = int(data.get("gw_member", 0))
    try:
        points = parse_points(message.text)
    except GoodwillError:
        await message.answer(
            t(
                "goodwill.bad_points",
                value=excerpt(message.text or "", 20),
                max=format_count(MAX_GOODWILL_POINTS),
            ),
            reply_markup=markup([_cancel_row(t, member_id)]),
        )
        return
    await state.update_data(gw_kind="points", gw_points=points)
    await state.set_state(GoodwillFlow.reason)
    member = await _member_or_refuse(message, state, staff, member_id)
    if member is None:
        return
    prompt = await message.answer(
        t(
            "goodwill.ask_reason",
            name=_who(member),
            gift=points_text(t, points),
            limit=REASON_LIMIT,
        ),
        reply_markup=markup([_cancel_row(t, member_id)]),
    )
    await remember_prompt(state, prompt)


async def on_reason(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    data = await state.get_data()
    member_id = int(data.get("gw_member", 0))
    try:
        reason = check_reason(message.text)
    except GoodwillError as problem:
        await message.answer(
            t(
                f"goodwill.{problem.reason}",
                length=len(message.text or ""),
                limit=REASON_LIMIT,
            ),
            reply_markup=markup([_cancel_row(t, member_id)]),
        )
        return
    await state.update_data(gw_reason=reason)
    await state.set_state(GoodwillFlow.confirm)
    member = await _member_or_refuse(message, state, staff, member_id)
    if member is None:
        return
    give = CDGoodwill(action="give", member_id=member_id)
    confirm = await message.answer(
        t(
            "goodwill.confirm",
            name=_who(member),
            gift=await _gift(staff, await state.get_data()),
            reason=reason,
        ),
        reply_markup=markup(
            [[_button(t, "goodwill.give_button", give)], _cancel_row(t, member_id)]
        ),
    )
    await remember_prompt(state, confirm)


async def _member_or_refuse(
    message: Message, state: FSMContext, staff: StaffContext, member_id: int
) -> Member | None:
    try:
        return await grantable_member(staff.session, member_id)
    except GoodwillError:
        await state.clear()
        await message.answer(staff.t("goodwill.member_gone"))
        return None


async def on_not_a_button(message: Message, staff: StaffContext) -> None:
    """Typed while the flow waits for a button (points or coupon, which coupon, Give): the
    flow stays, and the staff member is told what it waits for."""
    await message.answer(staff.t("goodwill.use_buttons"))


async def on_cancel(message: Message, state: FSMContext, staff: StaffContext) -> None:
    await state.clear()
    await message.answer(staff.t("goodwill.cancelled"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    admin = MinRole(StaffRole.ADMIN)
    router.message.register(on_cancel, StateFilter(GoodwillFlow), Command("cancel"), admin)
    not_command = ~F.text.startswith("/")
    router.message.register(on_points, StateFilter(GoodwillFlow.points), not_command, admin)
    router.message.register(on_reason, StateFilter(GoodwillFlow.reason), not_command, admin)
    router.message.register(
        on_not_a_button,
        StateFilter(GoodwillFlow.choose, GoodwillFlow.confirm),
        not_command,
        admin,
    )
    router.callback_query.register(on_goodwill, CDGoodwill.filter(), MinRole(StaffRole.CASHIER))
    router.callback_query.register(
        on_followup, F.data.startswith(FOLLOWUP_PREFIX), MinRole(StaffRole.CASHIER)
    )
    return router
