"""/offer (admin and up): create offers, list them, and issue coupons from one to a segment.

Creating is a short guided flow (name → name in the other language → kind → value → minimum
spend → validity → confirm): members read the name in their language, or the other one when
it was skipped. Issuing picks an offer and an audience, shows the exact number of members and
the notice as each language's members will read it, asks "issue to N members?", and runs as a
``coupons`` campaign: one coupon per member, in batches, optionally announced through the
outbox as marketing under the usual guardrails.
"""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.campaigns.offers import get_offer, offer_overview
from care.campaigns.render import PREVIEW_COUPON_CODE, audience_label, offer_notice, readers_of
from care.campaigns.schedule import COUPONS, delivery_spread
from care.campaigns.supervision import CampaignWatchers
from care.core.config import CareConfig
from care.core.formatting import discount_label
from care.core.i18n import LOCALES, Translator, translator
from care.core.money import format_money, parse_amount
from care.loyalty.coupons import IssuedCoupon
from care.loyalty.offers import coupon_expiry, create_offer, describe_offer
from care.segments.audience import Audience, AudienceChoices, count_audience, sample_member
from handlers.staff import campaign_flow
from handlers.staff.audience_picker import AudienceMenu, AudiencePicker, stored_audience
from handlers.staff.campaign_flow import counted, fresh_flow, spread_text
from handlers.staff.context import StaffContext
from handlers.staff.flows import CDOffer, OfferFlow
from storage.enums import OfferKind
from storage.models import Campaign, Offer

TITLE_MAX = 120
LIST_LIMIT = 10
MAX_VALID_DAYS = 365
KINDS = (OfferKind.PERCENT_OFF, OfferKind.AMOUNT_OFF, OfferKind.GIFT)
QUICK_DAYS = (7, 14, 30, 90)


_button = CDOffer.add


def _cancel_row(t: Translator) -> InlineKeyboardBuilder:
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("broadcast.cancel"), "cancel")
    return builder


def _markup(builder: InlineKeyboardBuilder, width: int = 1) -> InlineKeyboardMarkup:
    builder.adjust(width)
    return builder.as_markup()


async def _overview_text(staff: StaffContext) -> tuple[str, bool]:
    t = staff.t
    lines = await offer_overview(staff.session, staff.clock, limit=LIST_LIMIT)
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


async def cmd_offer(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    await fresh_flow(state)
    text, any_offers = await _overview_text(staff)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("offer_admin.button_new"), "new")
    if any_offers:
        _button(builder, t.plain("offer_admin.button_issue"), "issue")
    await message.answer(text, reply_markup=_markup(builder))


# ------------------------------------------------------------------ creating an offer


async def on_new(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await fresh_flow(state)
    await state.set_state(OfferFlow.title)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.answer(
        t("offer_admin.ask_title", limit=TITLE_MAX), reply_markup=_markup(_cancel_row(t))
    )


def _other(locale: str) -> str:
    return "en" if locale == "zh" else "zh"


async def on_title(message: Message, state: FSMContext, staff: StaffContext) -> None:
    """The name in the staff's language; then the name for the other language's members."""
    t = staff.t
    title = (message.text or "").strip()
    if not title or len(title) > TITLE_MAX or title.startswith("/"):
        await message.answer(t("offer_admin.bad_title", limit=TITLE_MAX))
        return
    other = _other(staff.locale)
    await state.update_data({"title": title, f"title_{staff.locale}": title, f"title_{other}": ""})
    await state.set_state(OfferFlow.name_other)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("content.button_skip"), "skip_name")
    builder.attach(_cancel_row(t))
    await message.answer(
        t(f"content.offer_ask_name_{other}", limit=TITLE_MAX, title=title),
        reply_markup=_markup(builder),
    )


async def on_name_other(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    name = (message.text or "").strip()
    if not name or len(name) > TITLE_MAX or name.startswith("/"):
        await message.answer(t("offer_admin.bad_title", limit=TITLE_MAX))
        return
    await state.update_data({f"title_{_other(staff.locale)}": name})
    await _ask_kind(message, state, t)


async def on_skip_name(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await _ask_kind(callback.message, state, t)


async def _ask_kind(message: Message, state: FSMContext, t: Translator) -> None:
    await state.set_state(OfferFlow.kind)
    builder = InlineKeyboardBuilder()
    for kind in KINDS:
        _button(builder, t.plain(f"offer_admin.kind_{kind}"), "kind", kind.value)
    builder.attach(_cancel_row(t))
    await message.answer(t("offer_admin.ask_kind"), reply_markup=_markup(builder))


async def on_kind(
    callback: CallbackQuery, callback_data: CDOffer, state: FSMContext, staff: StaffContext
) -> None:
    t, config = staff.t, staff.config
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


async def on_value(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t, config = staff.t, staff.config
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


async def on_min_spend(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t, config = staff.t, staff.config
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


async def on_days_text(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t, config = staff.t, staff.config
    text = (message.text or "").strip()
    if not (text.isdigit() and 1 <= int(text) <= MAX_VALID_DAYS):
        await message.answer(t("offer_admin.bad_days", limit=MAX_VALID_DAYS))
        return
    await _confirm_offer(message, state, config, t, int(text))


async def on_days_button(
    callback: CallbackQuery, callback_data: CDOffer, state: FSMContext, staff: StaffContext
) -> None:
    t, config = staff.t, staff.config
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
    summary = t(
        "offer_admin.summary",
        title=data["title"],
        gives=gives,
        minimum=format_money(minimum, config.currency) if minimum else "–",
        days=data["days"],
    )
    zh, en = data.get("title_zh") or "", data.get("title_en") or ""
    return (
        summary
        + "\n"
        + t(
            "content.offer_names",
            zh=zh or en,
            en=en or zh,
        )
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


async def on_create(callback: CallbackQuery, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    data = await state.get_data()
    assert isinstance(callback.message, Message)
    await fresh_flow(state)
    await state.set_state(OfferFlow.pick_offer)
    try:
        offer = await create_offer(
            staff.session,
            staff.clock,
            staff.config,
            title=data["title"],
            title_zh=data.get("title_zh") or None,
            title_en=data.get("title_en") or None,
            kind=OfferKind(data["kind"]),
            value=int(data["value"]),
            min_spend_minor=int(data.get("min_spend", 0)),
            coupon_valid_days=int(data["days"]),
            created_by=callback.from_user.id,
        )
    except (KeyError, ValueError):
        await callback.answer(t.plain("offer_admin.invalid"), show_alert=True)
        return
    await staff.audit(
        "offer.create",
        f"offer:{offer.id}",
        {
            "title": offer.title,
            "title_zh": offer.title_zh,
            "title_en": offer.title_en,
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


async def on_issue(callback: CallbackQuery, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    await fresh_flow(state)
    await callback.answer()
    assert isinstance(callback.message, Message)
    lines = await offer_overview(staff.session, staff.clock, limit=LIST_LIMIT)
    if not lines:
        await callback.message.answer(t("offer_admin.none"))
        return
    await state.set_state(OfferFlow.pick_offer)
    builder = InlineKeyboardBuilder()
    campaign_flow.add_offer_buttons(builder, CDOffer, t, lines)
    builder.attach(_cancel_row(t))
    await callback.message.answer(t("offer_admin.pick_offer"), reply_markup=_markup(builder))


async def on_offer_picked(
    callback: CallbackQuery, callback_data: CDOffer, state: FSMContext, staff: StaffContext
) -> None:
    offer_id = int(callback_data.value) if callback_data.value.isdigit() else 0
    offer = await get_offer(staff.session, staff.clock, offer_id)
    if offer is None:
        await callback.answer(staff.t.plain("broadcast.offer_gone"), show_alert=True)
        return
    await state.update_data(offer_id=offer.id)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await picker.open(callback.message, state, staff)


async def _audience_menu(
    state: FSMContext, staff: StaffContext, choices: AudienceChoices
) -> AudienceMenu:
    offer_id = (await state.get_data()).get("offer_id", 0)
    offer = await get_offer(staff.session, staff.clock, offer_id)
    return AudienceMenu(staff.t("offer_admin.pick_audience", title=offer.title if offer else "–"))


async def _audience_chosen(
    message: Message, state: FSMContext, staff: StaffContext, audience: Audience, members: int
) -> None:
    t = staff.t
    offer = await get_offer(
        staff.session, staff.clock, (await state.get_data()).get("offer_id", 0)
    )
    if offer is None:
        await fresh_flow(state)
        await message.answer(t("broadcast.offer_gone"))
        return
    reachable = await count_audience(staff.session, audience)
    await state.update_data(audience=audience.to_spec())
    await state.set_state(OfferFlow.issue)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("offer_admin.button_issue_notify"), "go", "notify")
    _button(builder, t.plain("offer_admin.button_issue_quiet"), "go", "quiet")
    _button(builder, t.plain("broadcast.cancel"), "cancel")
    await message.edit_reply_markup(reply_markup=None)
    for preview in await _notice_previews(staff, audience, offer):
        await message.answer(preview)
    await message.answer(
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


# Coupons go to every active member of the audience; only the notice needs marketing consent.
picker = AudiencePicker(
    CDOffer, OfferFlow.audience, marketing=False, menu=_audience_menu, chosen=_audience_chosen
)


async def _notice_previews(staff: StaffContext, audience: Audience, offer: Offer) -> list[str]:
    """The coupon notice as a member of each language will read it, under a heading."""
    t, session = staff.t, staff.session
    shown = []
    expires = coupon_expiry(offer, staff.clock.now())
    for locale in LOCALES:
        sample = await sample_member(session, audience, locale=locale)
        if sample is None:
            continue
        coupon = IssuedCoupon(sample.id, PREVIEW_COUPON_CODE, expires)
        heading = t(
            "content.preview_heading",
            language=t.plain(f"content.language.{locale}"),
            n=await readers_of(session, audience, locale),
        )
        notice = offer_notice(translator(locale), sample, offer, coupon)
        shown.append(f"{heading}\n\n{notice}")
    return shown


async def on_go(
    callback: CallbackQuery, callback_data: CDOffer, state: FSMContext, staff: StaffContext
) -> None:
    """Issue and notify, or issue quietly: first "issue coupons to N members?"."""
    t = staff.t
    data = await state.get_data()
    assert isinstance(callback.message, Message)
    offer = await get_offer(staff.session, staff.clock, data.get("offer_id", 0))
    audience = await stored_audience(state)
    if offer is None or audience is None:
        await fresh_flow(state)
        await callback.answer(t.plain("broadcast.stale"), show_alert=True)
        return
    await callback.answer()
    await callback.message.edit_reply_markup(reply_markup=None)
    notify = callback_data.value == "notify"
    await state.update_data(notify=notify)
    members = await count_audience(staff.session, audience, marketing=False)
    lines = [counted(t, "content.confirm_issue", members)]
    if notify:
        reachable = await count_audience(staff.session, audience)
        lines.append(counted(t, "content.confirm_notify", reachable))
        spread = await delivery_spread(staff.session, staff.config, audience, staff.clock.now())
        if spread.total:
            lines.append(spread_text(t, staff.config, spread))
    else:
        lines.append(t("content.confirm_quiet"))
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("content.button_issue_yes"), "go_yes")
    _button(builder, t.plain("broadcast.cancel"), "cancel")
    await callback.message.answer("\n".join(lines), reply_markup=_markup(builder))


async def on_go_yes(
    callback: CallbackQuery,
    state: FSMContext,
    staff: StaffContext,
    session_factory: async_sessionmaker[AsyncSession],
    campaign_watchers: CampaignWatchers,
) -> None:
    data = await state.get_data()
    assert isinstance(callback.message, Message)
    offer = await get_offer(staff.session, staff.clock, data.get("offer_id", 0))
    audience = await stored_audience(state)
    if offer is None or audience is None:
        await fresh_flow(state)
        await callback.answer(staff.t.plain("broadcast.stale"), show_alert=True)
        return
    await callback.answer()
    await callback.message.edit_reply_markup(reply_markup=None)
    notify = bool(data.get("notify"))
    await fresh_flow(state)
    draft = campaign_flow.CampaignDraft(
        audience=audience, name=offer.title, kind=COUPONS, notify=notify, offer_id=offer.id
    )

    def note(campaign: Campaign) -> campaign_flow.AuditNote:
        return campaign_flow.AuditNote(
            "offer.issue",
            f"offer:{offer.id}",
            {
                "campaign_id": campaign.id,
                "audience": campaign.audience,
                "members": campaign.recipients,
                "notify": notify,
            },
        )

    await campaign_flow.launch_now(
        callback.message,
        staff,
        draft,
        note,
        session_factory=session_factory,
        watchers=campaign_watchers,
    )


async def on_bad_input(message: Message, t: Translator) -> None:
    await message.answer(t("offer_admin.use_buttons"))


def build_router() -> Router:
    router = campaign_flow.flow_router(
        __name__, CDOffer, OfferFlow, "offer_admin.cancelled", cancel_button_anywhere=True
    )
    router.message.register(cmd_offer, Command("offer"))
    not_command = ~F.text.startswith("/")
    router.message.register(on_title, OfferFlow.title, not_command)
    router.message.register(on_name_other, OfferFlow.name_other, not_command)
    router.message.register(on_value, OfferFlow.value, not_command)
    router.message.register(on_min_spend, OfferFlow.min_spend, not_command)
    router.message.register(on_days_text, OfferFlow.days, not_command)
    router.message.register(
        on_bad_input,
        StateFilter(OfferFlow.kind, OfferFlow.confirm, OfferFlow.audience, OfferFlow.issue),
        not_command,
    )

    on = CDOffer.on
    router.callback_query.register(on_new, on("new"))
    router.callback_query.register(on_issue, on("issue"))
    router.callback_query.register(on_kind, on("kind"), OfferFlow.kind)
    router.callback_query.register(on_no_minimum, on("min0"), OfferFlow.min_spend)
    router.callback_query.register(on_days_button, on("days"), OfferFlow.days)
    router.callback_query.register(on_create, on("create"), OfferFlow.confirm)
    router.callback_query.register(on_offer_picked, on("offer"), OfferFlow.pick_offer)
    picker.register(router)
    router.callback_query.register(on_skip_name, on("skip_name"), OfferFlow.name_other)
    router.callback_query.register(on_go, on("go"), OfferFlow.issue)
    router.callback_query.register(on_go_yes, on("go_yes"), OfferFlow.issue)
    return router
