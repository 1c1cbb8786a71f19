"""/broadcast (admin and up): audience → text → photo → coupon → preview → send now or later.

The preview is the real message rendered for a real member of the audience, beside the exact
number of recipients. Sending starts a campaign through the shared launch path; a watcher task
launches it and keeps a progress message in the staff chat up to date until the final report.
"""

from __future__ import annotations

from collections.abc import Callable

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.campaigns.offers import get_offer, offer_overview
from care.campaigns.render import audience_label, preview_message
from care.campaigns.schedule import (
    CampaignError,
    ScheduleError,
    cancel_campaign,
    parse_shop_time,
    scheduled_campaigns,
)
from care.campaigns.supervision import CampaignWatchers
from care.core.formatting import zone_label
from care.core.i18n import Translator
from care.core.quiet_hours import member_zone
from care.core.templates import TemplateProblem, describe_placeholders
from care.segments.audience import Audience, AudienceChoices
from handlers.staff.audience_picker import AudienceMenu, AudiencePicker, Button, stored_audience
from handlers.staff.campaign_flow import (
    AuditNote,
    CampaignDraft,
    add_offer_buttons,
    flow_router,
    fresh_flow,
    launch_now,
    start_campaign,
)
from handlers.staff.context import StaffContext
from handlers.staff.flows import BroadcastFlow, CDBroadcast
from storage.models import Campaign

MAX_TEXT = 4096
OFFER_BUTTONS = 8


_button = CDBroadcast.add


def _placeholder_help(t: Translator) -> str:
    lines = [
        t("broadcast.placeholder_line", name="{{ " + name + " }}", about=about)
        for name, about in describe_placeholders(t.locale)
    ]
    return "\n".join(lines)


def _problem_text(t: Translator, problem: TemplateProblem) -> str:
    return t("broadcast.template_problem", problem=problem.localized(t.locale)) + (
        "\n" + _placeholder_help(t)
    )


# ------------------------------------------------------------------ choosing the audience


async def _audience_menu(
    state: FSMContext, staff: StaffContext, choices: AudienceChoices
) -> AudienceMenu:
    """All members and the four kinds; each scheduled campaign with a button to call it off."""
    t, zone = staff.t, member_zone(staff.config.default_timezone)
    scheduled = await scheduled_campaigns(staff.session)
    text = t("broadcast.start", n=choices.total)
    for campaign in scheduled:
        assert campaign.scheduled_at is not None
        text += "\n" + t(
            "broadcast.scheduled_line",
            id=campaign.id,
            when=campaign.scheduled_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            audience=audience_label(t, campaign.audience),
        )
    buttons = [
        Button(t.plain("broadcast.unschedule", id=campaign.id), "unschedule", str(campaign.id))
        for campaign in scheduled
    ]
    return AudienceMenu(text, buttons)


async def _audience_chosen(
    message: Message, state: FSMContext, staff: StaffContext, audience: Audience, members: int
) -> None:
    t = staff.t
    await state.update_data(audience=audience.to_spec())
    await state.set_state(BroadcastFlow.text)
    await message.edit_text(
        t("broadcast.audience_chosen", audience=audience_label(t, audience.to_spec()), n=members)
    )
    await message.answer(t("broadcast.ask_text") + "\n" + _placeholder_help(t))


picker = AudiencePicker(
    CDBroadcast,
    BroadcastFlow.audience,
    marketing=True,
    menu=_audience_menu,
    chosen=_audience_chosen,
)


async def cmd_broadcast(message: Message, state: FSMContext, staff: StaffContext) -> None:
    await fresh_flow(state)
    await picker.open(message, state, staff)


async def on_unschedule(
    callback: CallbackQuery, callback_data: CDBroadcast, staff: StaffContext
) -> None:
    campaign_id = int(callback_data.value) if callback_data.value.isdigit() else 0
    if not await cancel_campaign(staff.session, campaign_id):
        await callback.answer(staff.t.plain("broadcast.unschedule_late"), show_alert=True)
        return
    await staff.audit("broadcast.cancel", f"campaign:{campaign_id}")
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(staff.t("broadcast.unscheduled", id=campaign_id))


# ------------------------------------------------------------------ text, photo and coupon


async def on_text(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    template = message.html_text if message.text else ""
    if not template.strip() or len(template) > MAX_TEXT:
        await message.answer(t("broadcast.bad_text", limit=MAX_TEXT))
        return
    audience = await stored_audience(state)
    if audience is None:
        await fresh_flow(state)
        await message.answer(t("broadcast.stale"))
        return
    try:
        await preview_message(
            staff.session, staff.config, staff.clock, audience=audience, template=template
        )
    except TemplateProblem as problem:
        await message.answer(_problem_text(t, problem))
        return
    except CampaignError:
        await message.answer(t("broadcast.empty_audience"))
        return
    data = await state.update_data(template=template)
    if data.get("editing"):
        await _show_preview(message, state, staff)
        return
    await state.set_state(BroadcastFlow.photo)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("broadcast.skip_photo"), "skip_photo")
    await message.answer(t("broadcast.ask_photo"), reply_markup=builder.as_markup())


async def on_not_text(message: Message, t: Translator) -> None:
    await message.answer(t("broadcast.bad_text", limit=MAX_TEXT))


async def on_photo(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    assert message.photo
    audience = await stored_audience(state)
    template = (await state.get_data()).get("template", "")
    if audience is None or not template:
        await fresh_flow(state)
        await message.answer(t("broadcast.stale"))
        return
    try:
        await preview_message(
            staff.session,
            staff.config,
            staff.clock,
            audience=audience,
            template=template,
            with_photo=True,
        )
    except TemplateProblem as problem:
        await message.answer(t("broadcast.caption_problem", problem=problem.localized(t.locale)))
        return
    except CampaignError:
        await message.answer(t("broadcast.empty_audience"))
        return
    await state.update_data(photo=message.photo[-1].file_id)
    await _ask_coupon(message, state, staff)


async def on_not_photo(message: Message, t: Translator) -> None:
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("broadcast.skip_photo"), "skip_photo")
    await message.answer(t("broadcast.ask_photo"), reply_markup=builder.as_markup())


async def on_skip_photo(callback: CallbackQuery, state: FSMContext, staff: StaffContext) -> None:
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await state.update_data(photo=None)
    await _ask_coupon(callback.message, state, staff)


async def _ask_coupon(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    offers = await offer_overview(staff.session, staff.clock, limit=OFFER_BUTTONS)
    if not offers:
        await state.update_data(offer_id=None)
        await message.answer(t("broadcast.no_offers"))
        await _show_preview(message, state, staff)
        return
    await state.set_state(BroadcastFlow.coupon)
    builder = InlineKeyboardBuilder()
    add_offer_buttons(builder, CDBroadcast, t, offers)
    _button(builder, t.plain("broadcast.no_coupon"), "offer", "0")
    builder.adjust(1)
    await message.answer(t("broadcast.ask_coupon"), reply_markup=builder.as_markup())


async def on_offer(
    callback: CallbackQuery, callback_data: CDBroadcast, state: FSMContext, staff: StaffContext
) -> None:
    offer_id = int(callback_data.value) if callback_data.value.isdigit() else 0
    if offer_id and await get_offer(staff.session, staff.clock, offer_id) is None:
        await callback.answer(staff.t.plain("broadcast.offer_gone"), show_alert=True)
        return
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await state.update_data(offer_id=offer_id or None)
    await _show_preview(callback.message, state, staff)


# ------------------------------------------------------------------ preview and sending


async def _show_preview(message: Message, state: FSMContext, staff: StaffContext) -> None:
    """Send the message as the sample member will see it, then the count and the choices."""
    t, session, clock = staff.t, staff.session, staff.clock
    data = await state.get_data()
    audience = await stored_audience(state)
    offer = await get_offer(session, clock, data["offer_id"]) if data.get("offer_id") else None
    photo = data.get("photo")
    if audience is None:
        await fresh_flow(state)
        await message.answer(t("broadcast.stale"))
        return
    try:
        preview = await preview_message(
            session,
            staff.config,
            clock,
            audience=audience,
            template=data.get("template", ""),
            offer=offer,
            with_photo=photo is not None,
        )
    except TemplateProblem as problem:
        await state.update_data(editing=True)
        await state.set_state(BroadcastFlow.text)
        await message.answer(_problem_text(t, problem))
        return
    except CampaignError:
        await state.set_state(BroadcastFlow.audience)
        await message.answer(t("broadcast.empty_audience"))
        return
    await state.set_state(BroadcastFlow.confirm)
    await state.update_data(editing=False)
    if photo:
        await message.answer_photo(photo, caption=preview.text)
    else:
        await message.answer(preview.text)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("broadcast.send_now"), "send")
    _button(builder, t.plain("broadcast.send_later"), "later")
    _button(builder, t.plain("broadcast.edit_text"), "edit")
    _button(builder, t.plain("broadcast.cancel"), "cancel")
    builder.adjust(2)
    await message.answer(
        t(
            "broadcast.summary",
            audience=audience_label(t, audience.to_spec()),
            n=preview.recipients,
            name=preview.sample.name or preview.sample.member_code,
            code=preview.sample.member_code,
            coupon=offer.title if offer else t.plain("broadcast.no_coupon_short"),
        ),
        reply_markup=builder.as_markup(),
    )


async def on_edit(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.update_data(editing=True)
    await state.set_state(BroadcastFlow.text)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await callback.message.answer(t("broadcast.ask_text") + "\n" + _placeholder_help(t))


async def _draft(message: Message, state: FSMContext, staff: StaffContext) -> CampaignDraft | None:
    """The broadcast staff confirmed, or None (and why, to staff) when it can no longer go."""
    data = await state.get_data()
    audience = await stored_audience(state)
    if audience is None:
        await fresh_flow(state)
        await message.answer(staff.t("broadcast.stale"))
        return None
    offer_id = data.get("offer_id")
    if offer_id and await get_offer(staff.session, staff.clock, offer_id) is None:
        await message.answer(staff.t("broadcast.offer_gone"))
        return None
    # Leave the flow before writing: the FSM storage commits on its own connection.
    await fresh_flow(state)
    return CampaignDraft(
        audience=audience,
        template=data.get("template", ""),
        photo_file_id=data.get("photo"),
        offer_id=offer_id,
    )


def _audit_note(*, scheduled: bool) -> Callable[[Campaign], AuditNote]:
    def note(campaign: Campaign) -> AuditNote:
        return AuditNote(
            "broadcast.schedule" if scheduled else "broadcast.send",
            f"campaign:{campaign.id}",
            {
                "audience": campaign.audience,
                "recipients": campaign.recipients,
                "offer_id": campaign.offer_id,
                "photo": campaign.photo_file_id is not None,
                "scheduled_at": (
                    campaign.scheduled_at.isoformat() if campaign.scheduled_at else None
                ),
            },
        )

    return note


async def on_send(
    callback: CallbackQuery,
    state: FSMContext,
    staff: StaffContext,
    session_factory: async_sessionmaker[AsyncSession],
    campaign_watchers: CampaignWatchers,
) -> None:
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    draft = await _draft(callback.message, state, staff)
    if draft is None:
        return
    launched = await launch_now(
        callback.message,
        staff,
        draft,
        _audit_note(scheduled=False),
        session_factory=session_factory,
        watchers=campaign_watchers,
    )
    if launched is None:
        # The audience emptied since the preview: staff picks another one.
        await picker.open(callback.message, state, staff)


async def on_later(callback: CallbackQuery, state: FSMContext, staff: StaffContext) -> None:
    config = staff.config
    await state.set_state(BroadcastFlow.schedule)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    example = staff.clock.now().astimezone(member_zone(config.default_timezone))
    await callback.message.answer(
        staff.t(
            "broadcast.ask_time",
            timezone=zone_label(config.default_timezone, staff.t.locale, staff.clock.now()),
            example=example.strftime("%Y-%m-%d 18:30"),
        )
    )


async def on_time(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t, zone = staff.t, staff.config.default_timezone
    try:
        when = parse_shop_time(message.text or "", zone, staff.clock.now())
    except ScheduleError as error:
        shop_zone = zone_label(zone, t.locale, staff.clock.now())
        await message.answer(t(f"broadcast.time_{error.reason}", timezone=shop_zone))
        return
    draft = await _draft(message, state, staff)
    if draft is None:
        return
    try:
        campaign = await start_campaign(
            staff, draft, _audit_note(scheduled=True), chat_id=message.chat.id, scheduled_at=when
        )
    except CampaignError:
        await picker.open(message, state, staff, text=t("broadcast.empty_audience"))
        return
    local = when.astimezone(member_zone(zone))
    await message.answer(
        t(
            "broadcast.scheduled",
            id=campaign.id,
            when=local.strftime("%Y-%m-%d %H:%M"),
            timezone=zone_label(zone, t.locale, staff.clock.now()),
        )
    )


async def on_bad_time(message: Message, staff: StaffContext) -> None:
    shop_zone = zone_label(staff.config.default_timezone, staff.t.locale, staff.clock.now())
    await message.answer(staff.t("broadcast.time_format", timezone=shop_zone))


def build_router() -> Router:
    router = flow_router(__name__, CDBroadcast, BroadcastFlow, "broadcast.cancelled")
    router.message.register(cmd_broadcast, Command("broadcast"))
    not_command = ~F.text.startswith("/")
    router.message.register(on_text, BroadcastFlow.text, F.text, not_command)
    router.message.register(on_not_text, BroadcastFlow.text, ~F.text)
    router.message.register(on_photo, BroadcastFlow.photo, F.photo)
    router.message.register(on_not_photo, BroadcastFlow.photo, ~F.text.startswith("/"))
    router.message.register(on_time, BroadcastFlow.schedule, F.text, not_command)
    router.message.register(on_bad_time, BroadcastFlow.schedule, ~F.text)

    on = CDBroadcast.on
    router.callback_query.register(on_unschedule, on("unschedule"))
    picker.register(router)
    router.callback_query.register(on_skip_photo, on("skip_photo"), BroadcastFlow.photo)
    router.callback_query.register(on_offer, on("offer"), BroadcastFlow.coupon)
    router.callback_query.register(on_send, on("send"), BroadcastFlow.confirm)
    router.callback_query.register(on_later, on("later"), BroadcastFlow.confirm)
    router.callback_query.register(on_edit, on("edit"), BroadcastFlow.confirm)
    return router
