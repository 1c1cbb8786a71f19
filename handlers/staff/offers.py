"""/offer (admin and up): create offers, list them, and issue coupons from one to a segment.

Creating is a short guided flow (title → kind → value → minimum spend → validity → confirm).
Issuing picks an offer and an audience, shows the exact number of members, and runs as a
``coupons`` campaign: one coupon per member, in batches, optionally announced through the
outbox as marketing under the usual guardrails.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.campaigns.campaigns import (
    COUPONS,
    CampaignError,
    audience_label,
    create_campaign,
    get_offer,
    offer_overview,
)
from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.formatting import discount_label
from care.core.i18n import Translator
from care.core.money import format_money, parse_amount
from care.loyalty.ledger import create_offer, describe_offer
from care.segments.audience import Audience, AudienceError, audience_choices, count_audience
from handlers.staff.access import MinRole
from handlers.staff.broadcast import CampaignWatchers, fresh_flow, kind_keyboard, value_keyboard
from storage.enums import OfferKind, StaffRole

TITLE_MAX = 120
LIST_LIMIT = 10
MAX_VALID_DAYS = 365
KINDS = (OfferKind.PERCENT_OFF, OfferKind.AMOUNT_OFF, OfferKind.GIFT)
QUICK_DAYS = (7, 14, 30, 90)


class OfferFlow(StatesGroup):
    title = State()
    kind = State()
    value = State()
    min_spend = State()
    days = State()
    confirm = State()
    pick_offer = State()
    audience = State()
    issue = State()


class CDOffer(CallbackData, prefix="of"):
    """``action``: new, issue, kind, min0, days, create, offer, kind, pick, back, go, cancel."""

    action: str
    value: str = ""


def _button(builder: InlineKeyboardBuilder, text: str, action: str, value: str = "") -> None:
    builder.button(text=text, callback_data=CDOffer(action=action, value=value))


def _cancel_row(t: Translator) -> InlineKeyboardBuilder:
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("broadcast.cancel"), "cancel")
    return builder


def _markup(builder: InlineKeyboardBuilder, width: int = 1) -> InlineKeyboardMarkup:
    builder.adjust(width)
    return builder.as_markup()


async def _overview_text(session: AsyncSession, clock: Clock, t: Translator) -> tuple[str, bool]:
    lines = await offer_overview(session, clock, limit=LIST_LIMIT)
    if not lines:
        return t("offer_admin.none"), False
    text = [t("offer_admin.list_title")]
    for line in lines:
        days = line.offer.coupon_valid_days
        text.append(
            t(
                "offer_admin.list_line",
                id=line.offer.id,
                title=line.offer.title,
                offer=describe_offer(line.offer, t),
                days=days if days is not None else "–",
                issued=line.issued,
                redeemed=line.redeemed,
            )
        )
    return "\n".join(text), True


async def cmd_offer(
    message: Message, state: FSMContext, session: AsyncSession, clock: Clock, t: Translator
) -> None:
    await fresh_flow(state)
    text, any_offers = await _overview_text(session, clock, t)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("offer_admin.button_new"), "new")
    if any_offers:
        _button(builder, t.plain("offer_admin.button_issue"), "issue")
    await message.answer(text, reply_markup=_markup(builder))


async def on_cancel(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await fresh_flow(state)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(t("offer_admin.cancelled"))


async def cmd_cancel(message: Message, state: FSMContext, t: Translator) -> None:
    await fresh_flow(state)
    await message.answer(t("offer_admin.cancelled"))


# ------------------------------------------------------------------ creating an offer


async def on_new(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await fresh_flow(state)
    await state.set_state(OfferFlow.title)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.answer(
        t("offer_admin.ask_title", limit=TITLE_MAX), reply_markup=_markup(_cancel_row(t))
    )


async def on_title(message: Message, state: FSMContext, t: Translator) -> None:
    title = (message.text or "").strip()
    if not title or len(title) > TITLE_MAX or title.startswith("/"):
        await message.answer(t("offer_admin.bad_title", limit=TITLE_MAX))
        return
    await state.update_data(title=title)
    await state.set_state(OfferFlow.kind)
    builder = InlineKeyboardBuilder()
    for kind in KINDS:
        _button(builder, t.plain(f"offer_admin.kind_{kind}"), "kind", kind.value)
    builder.attach(_cancel_row(t))
    await message.answer(t("offer_admin.ask_kind"), reply_markup=_markup(builder))


async def on_kind(
    callback: CallbackQuery,
    callback_data: CDOffer,
    state: FSMContext,
    config: CareConfig,
    t: Translator,
) -> None:
    if callback_data.value not in {kind.value for kind in KINDS}:
        await callback.answer()
        return
    kind = OfferKind(callback_data.value)
    await state.update_data(kind=kind.value)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    if kind == OfferKind.GIFT:
        await state.update_data(value=0)
        await _ask_min_spend(callback.message, state, config, t)
        return
    await state.set_state(OfferFlow.value)
    await callback.message.answer(t(f"offer_admin.ask_value_{kind}"))


async def on_value(message: Message, state: FSMContext, config: CareConfig, t: Translator) -> None:
    kind = OfferKind((await state.get_data())["kind"])
    text = (message.text or "").strip().rstrip("%％")
    value: int | None = None
    if kind == OfferKind.PERCENT_OFF:
        if text.isdigit() and 1 <= int(text) <= 100:
            value = int(text)
    else:
        try:
            value = parse_amount(text, config.currency)
        except ValueError:
            value = None
        if value is not None and not 0 < value <= 100_000_000:
            value = None
    if value is None:
        await message.answer(t(f"offer_admin.bad_value_{kind}"))
        return
    await state.update_data(value=value)
    await _ask_min_spend(message, state, config, t)


async def _ask_min_spend(
    message: Message, state: FSMContext, config: CareConfig, t: Translator
) -> None:
    await state.set_state(OfferFlow.min_spend)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("offer_admin.no_minimum"), "min0")
    await message.answer(
        t("offer_admin.ask_min_spend", example=format_money(10000, config.currency)),
        reply_markup=_markup(builder),
    )


async def on_min_spend(
    message: Message, state: FSMContext, config: CareConfig, t: Translator
) -> None:
    text = (message.text or "").strip()
    try:
        minimum = 0 if text == "0" else parse_amount(text, config.currency)
    except ValueError:
        minimum = -1
    if not 0 <= minimum <= 100_000_000:
        await message.answer(t("offer_admin.bad_min_spend"))
        return
    await state.update_data(min_spend=minimum)
    await _ask_days(message, state, t)


async def on_no_minimum(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await state.update_data(min_spend=0)
    await _ask_days(callback.message, state, t)


async def _ask_days(message: Message, state: FSMContext, t: Translator) -> None:
    await state.set_state(OfferFlow.days)
    builder = InlineKeyboardBuilder()
    for days in QUICK_DAYS:
        _button(builder, t.plain("offer_admin.days_button", n=days), "days", str(days))
    await message.answer(
        t("offer_admin.ask_days", limit=MAX_VALID_DAYS), reply_markup=_markup(builder, 4)
    )


async def on_days_text(
    message: Message, state: FSMContext, config: CareConfig, t: Translator
) -> None:
    text = (message.text or "").strip()
    if not (text.isdigit() and 1 <= int(text) <= MAX_VALID_DAYS):
        await message.answer(t("offer_admin.bad_days", limit=MAX_VALID_DAYS))
        return
    await _confirm_offer(message, state, config, t, int(text))


async def on_days_button(
    callback: CallbackQuery,
    callback_data: CDOffer,
    state: FSMContext,
    config: CareConfig,
    t: Translator,
) -> None:
    await callback.answer()
    if not callback_data.value.isdigit() or int(callback_data.value) not in QUICK_DAYS:
        return
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await _confirm_offer(callback.message, state, config, t, int(callback_data.value))


def _describe_draft(data: dict[str, Any], config: CareConfig, t: Translator) -> str:
    kind = OfferKind(data["kind"])
    if kind == OfferKind.PERCENT_OFF:
        gives = t.plain(
            "offer_admin.gives_percent", discount=discount_label(int(data["value"]), t.locale)
        )
    elif kind == OfferKind.AMOUNT_OFF:
        gives = t.plain(
            "offer_admin.gives_amount", value=format_money(data["value"], config.currency)
        )
    else:
        gives = t.plain("offer_admin.gives_gift")
    minimum = data.get("min_spend", 0)
    return t(
        "offer_admin.summary",
        title=data["title"],
        gives=gives,
        minimum=format_money(minimum, config.currency) if minimum else "–",
        days=data["days"],
    )


async def _confirm_offer(
    message: Message, state: FSMContext, config: CareConfig, t: Translator, days: int
) -> None:
    data = await state.update_data(days=days)
    await state.set_state(OfferFlow.confirm)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("offer_admin.button_create"), "create")
    _button(builder, t.plain("broadcast.cancel"), "cancel")
    await message.answer(_describe_draft(data, config, t), reply_markup=_markup(builder, 2))


async def on_create(
    callback: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
    staff_role: StaffRole,
) -> None:
    data = await state.get_data()
    assert isinstance(callback.message, Message)
    await fresh_flow(state)
    await state.set_state(OfferFlow.pick_offer)
    try:
        offer = await create_offer(
            session,
            clock,
            config,
            title=data["title"],
            kind=OfferKind(data["kind"]),
            value=int(data["value"]),
            min_spend_minor=int(data.get("min_spend", 0)),
            coupon_valid_days=int(data["days"]),
            created_by=callback.from_user.id,
        )
    except (KeyError, ValueError):
        await callback.answer(t.plain("offer_admin.invalid"), show_alert=True)
        return
    await audit(
        session,
        clock,
        actor_telegram_id=callback.from_user.id,
        actor_role=staff_role,
        action="offer.create",
        target=f"offer:{offer.id}",
        details={
            "title": offer.title,
            "kind": offer.kind,
            "value": offer.value,
            "min_spend_minor": offer.min_spend_minor,
            "coupon_valid_days": offer.coupon_valid_days,
        },
    )
    await callback.answer()
    await callback.message.edit_reply_markup(reply_markup=None)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("offer_admin.button_issue_this"), "offer", str(offer.id))
    await callback.message.answer(
        t("offer_admin.created", id=offer.id, title=offer.title, offer=describe_offer(offer, t)),
        reply_markup=_markup(builder),
    )


# ------------------------------------------------------------------ issuing coupons


async def on_issue(
    callback: CallbackQuery, state: FSMContext, session: AsyncSession, clock: Clock, t: Translator
) -> None:
    await fresh_flow(state)
    await callback.answer()
    assert isinstance(callback.message, Message)
    lines = await offer_overview(session, clock, limit=LIST_LIMIT)
    if not lines:
        await callback.message.answer(t("offer_admin.none"))
        return
    await state.set_state(OfferFlow.pick_offer)
    builder = InlineKeyboardBuilder()
    for line in lines:
        label = t.plain(
            "broadcast.offer_button", title=line.offer.title, offer=describe_offer(line.offer, t)
        )
        _button(builder, label, "offer", str(line.offer.id))
    builder.attach(_cancel_row(t))
    await callback.message.answer(t("offer_admin.pick_offer"), reply_markup=_markup(builder))


async def on_offer_picked(
    callback: CallbackQuery,
    callback_data: CDOffer,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
) -> None:
    offer_id = int(callback_data.value) if callback_data.value.isdigit() else 0
    offer = await get_offer(session, clock, offer_id)
    if offer is None:
        await callback.answer(t.plain("broadcast.offer_gone"), show_alert=True)
        return
    await state.update_data(offer_id=offer.id)
    await state.set_state(OfferFlow.audience)
    choices = await audience_choices(session, config.categories, marketing=False)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await callback.message.answer(
        t("offer_admin.pick_audience", title=offer.title),
        reply_markup=kind_keyboard(t, choices, cd=CDOffer),
    )


async def on_audience_kind(
    callback: CallbackQuery,
    callback_data: CDOffer,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
) -> None:
    kind = callback_data.value
    if kind == "all":
        await _audience_chosen(callback, state, session, clock, t, Audience("all"))
        return
    if kind not in ("tier", "stage", "segment", "interest"):
        await callback.answer()
        return
    await state.update_data(kind=kind)
    choices = await audience_choices(session, config.categories, marketing=False)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_text(
        t(f"broadcast.pick_{kind}"), reply_markup=value_keyboard(t, kind, choices, cd=CDOffer)
    )


async def on_audience_back(
    callback: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
) -> None:
    offer = await get_offer(session, clock, (await state.get_data()).get("offer_id", 0))
    choices = await audience_choices(session, config.categories, marketing=False)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_text(
        t("offer_admin.pick_audience", title=offer.title if offer else "–"),
        reply_markup=kind_keyboard(t, choices, cd=CDOffer),
    )


async def on_audience_pick(
    callback: CallbackQuery,
    callback_data: CDOffer,
    state: FSMContext,
    session: AsyncSession,
    clock: Clock,
    t: Translator,
) -> None:
    data = await state.get_data()
    try:
        audience = Audience.from_spec({"kind": data.get("kind"), "value": callback_data.value})
    except AudienceError:
        await callback.answer(t.plain("broadcast.stale"), show_alert=True)
        return
    await _audience_chosen(callback, state, session, clock, t, audience)


async def _audience_chosen(
    callback: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    clock: Clock,
    t: Translator,
    audience: Audience,
) -> None:
    await callback.answer()
    assert isinstance(callback.message, Message)
    members = await count_audience(session, audience, marketing=False)
    if members == 0:
        await callback.message.answer(t("broadcast.empty_audience"))
        return
    offer = await get_offer(session, clock, (await state.get_data()).get("offer_id", 0))
    if offer is None:
        await fresh_flow(state)
        await callback.message.answer(t("broadcast.offer_gone"))
        return
    reachable = await count_audience(session, audience)
    await state.update_data(audience=audience.to_spec())
    await state.set_state(OfferFlow.issue)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("offer_admin.button_issue_notify"), "go", "notify")
    _button(builder, t.plain("offer_admin.button_issue_quiet"), "go", "quiet")
    _button(builder, t.plain("broadcast.cancel"), "cancel")
    await callback.message.edit_text(
        t(
            "offer_admin.issue_summary",
            title=offer.title,
            offer=describe_offer(offer, t),
            audience=audience_label(t, audience.to_spec()),
            n=members,
            reachable=reachable,
        ),
        reply_markup=_markup(builder),
    )


async def on_go(
    callback: CallbackQuery,
    callback_data: CDOffer,
    state: FSMContext,
    session: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    clock: Clock,
    t: Translator,
    bot: Bot,
    staff_role: StaffRole,
    campaign_watchers: CampaignWatchers,
) -> None:
    data = await state.get_data()
    assert isinstance(callback.message, Message)
    offer = await get_offer(session, clock, data.get("offer_id", 0))
    try:
        audience = Audience.from_spec(data.get("audience") or {})
    except AudienceError:
        audience = None
    if offer is None or audience is None:
        await fresh_flow(state)
        await callback.answer(t.plain("broadcast.stale"), show_alert=True)
        return
    await callback.answer()
    await callback.message.edit_reply_markup(reply_markup=None)
    notify = callback_data.value == "notify"
    await fresh_flow(state)
    progress = await callback.message.answer(t("campaign.progress_starting"))
    try:
        campaign = await create_campaign(
            session,
            clock,
            audience=audience,
            template="",
            name=offer.title,
            kind=COUPONS,
            notify=notify,
            offer_id=offer.id,
            created_by=callback.from_user.id,
            locale=t.locale,
            progress_chat_id=progress.chat.id,
            progress_message_id=progress.message_id,
        )
    except CampaignError:
        await progress.edit_text(t("broadcast.empty_audience"))
        return
    await audit(
        session,
        clock,
        actor_telegram_id=callback.from_user.id,
        actor_role=staff_role,
        action="offer.issue",
        target=f"offer:{offer.id}",
        details={
            "campaign_id": campaign.id,
            "audience": campaign.audience,
            "members": campaign.recipients,
            "notify": notify,
        },
    )
    # The issuing runs outside this update, in its own sessions: it must see the campaign.
    await session.commit()
    campaign_watchers.start(
        bot,
        session_factory,
        config,
        clock,
        campaign_id=campaign.id,
        chat_id=progress.chat.id,
        message_id=progress.message_id,
        locale=t.locale,
    )


async def on_bad_input(message: Message, t: Translator) -> None:
    await message.answer(t("offer_admin.use_buttons"))


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE, MinRole(StaffRole.ADMIN))
    router.callback_query.filter(MinRole(StaffRole.ADMIN))

    router.message.register(cmd_offer, Command("offer"))
    router.message.register(cmd_cancel, Command("cancel"), StateFilter(OfferFlow))
    not_command = ~F.text.startswith("/")
    router.message.register(on_title, OfferFlow.title, not_command)
    router.message.register(on_value, OfferFlow.value, not_command)
    router.message.register(on_min_spend, OfferFlow.min_spend, not_command)
    router.message.register(on_days_text, OfferFlow.days, not_command)
    router.message.register(
        on_bad_input,
        StateFilter(OfferFlow.kind, OfferFlow.confirm, OfferFlow.audience, OfferFlow.issue),
        not_command,
    )

    def on(action: str) -> Any:
        return CDOffer.filter(F.action == action)

    router.callback_query.register(on_cancel, on("cancel"))
    router.callback_query.register(on_new, on("new"))
    router.callback_query.register(on_issue, on("issue"))
    router.callback_query.register(on_kind, on("kind"), OfferFlow.kind)
    router.callback_query.register(on_no_minimum, on("min0"), OfferFlow.min_spend)
    router.callback_query.register(on_days_button, on("days"), OfferFlow.days)
    router.callback_query.register(on_create, on("create"), OfferFlow.confirm)
    router.callback_query.register(on_offer_picked, on("offer"), OfferFlow.pick_offer)
    router.callback_query.register(on_audience_kind, on("kind"), OfferFlow.audience)
    router.callback_query.register(on_audience_back, on("back"), OfferFlow.audience)
    router.callback_query.register(on_audience_pick, on("pick"), OfferFlow.audience)
    router.callback_query.register(on_go, on("go"), OfferFlow.issue)
    return router
