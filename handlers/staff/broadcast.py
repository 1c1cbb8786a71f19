"""/broadcast (admin and up): audience → Chinese text → English text → photo → coupon →
previews → send now or later, each confirmed with the number of members it goes to.

Either text may be skipped: its readers get the other. The previews are the real messages
rendered for a real member of each language, beside the exact number of recipients; a send
time shows when members will actually receive it (quiet hours, their own time zones). Sending
starts a campaign through the shared launch path; a watcher task launches it and keeps a
progress message in the staff chat up to date until the final report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.campaigns.offers import get_offer, offer_overview
from care.campaigns.render import Texts, audience_label, preview_message, previews, readers_of
from care.campaigns.schedule import (
    CampaignError,
    ScheduleError,
    cancel_campaign,
    delivery_spread,
    parse_shop_time,
    scheduled_campaigns,
)
from care.campaigns.supervision import CampaignWatchers
from care.core.formatting import format_day_time, zone_label
from care.core.i18n import LOCALES, Translator
from care.core.quiet_hours import member_zone
from care.core.templates import TemplateProblem, describe_placeholders
from care.segments.audience import Audience, AudienceChoices, count_audience
from handlers.staff.audience_picker import AudienceMenu, AudiencePicker, Button, stored_audience
from handlers.staff.campaign_flow import (
    AuditNote,
    CampaignDraft,
    add_offer_buttons,
    counted,
    flow_router,
    fresh_flow,
    launch_now,
    local_when,
    spread_text,
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
            when=format_day_time(campaign.scheduled_at.astimezone(zone), t.locale),
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
    await state.update_data(audience=audience.to_spec(), template_zh="", template_en="")
    await message.edit_text(
        t("broadcast.audience_chosen", audience=audience_label(t, audience.to_spec()), n=members)
    )
    await _ask_text(message, state, staff, audience, LOCALES[0])


async def _ask_text(
    message: Message, state: FSMContext, staff: StaffContext, audience: Audience, locale: str
) -> None:
    """Ask for the text members reading ``locale`` get; Skip gives them the other one."""
    t = staff.t
    await state.set_state(BroadcastFlow.text if locale == "zh" else BroadcastFlow.text_en)
    readers = await readers_of(staff.session, audience, locale)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("content.button_skip"), "skip_text")
    help_text = "\n" + _placeholder_help(t) if locale == LOCALES[0] else ""
    await message.answer(
        t(f"content.ask_text_{locale}", n=readers) + help_text, reply_markup=builder.as_markup()
    )


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


def _text_locale(state_name: str | None) -> str:
    return "en" if state_name == BroadcastFlow.text_en.state else "zh"


async def on_text(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    locale = _text_locale(await state.get_state())
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
            staff.session,
            staff.config,
            staff.clock,
            audience=audience,
            template=template,
            locale=locale,
        )
    except TemplateProblem as problem:
        await message.answer(_problem_text(t, problem))
        return
    except CampaignError:
        await message.answer(t("broadcast.empty_audience"))
        return
    await state.update_data({f"template_{locale}": template})
    await _text_given(message, state, staff, audience, locale)


async def on_skip_text(callback: CallbackQuery, state: FSMContext, staff: StaffContext) -> None:
    locale = _text_locale(await state.get_state())
    audience = await stored_audience(state)
    if audience is None:
        await fresh_flow(state)
        await callback.answer(staff.t.plain("broadcast.stale"), show_alert=True)
        return
    data = await state.update_data({f"template_{locale}": ""})
    if locale == "en" and not data.get("template_zh"):
        # Both skipped: nobody would read anything.
        await callback.answer(staff.t.plain("content.need_one_text"), show_alert=True)
        return
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await _text_given(callback.message, state, staff, audience, locale)


async def _text_given(
    message: Message, state: FSMContext, staff: StaffContext, audience: Audience, locale: str
) -> None:
    """The next step after one language's text: the other language, then the photo."""
    if locale == LOCALES[0]:
        await _ask_text(message, state, staff, audience, "en")
        return
    data = await state.get_data()
    if data.get("editing"):
        await _show_preview(message, state, staff)
        return
    await state.set_state(BroadcastFlow.photo)
    builder = InlineKeyboardBuilder()
    _button(builder, staff.t.plain("broadcast.skip_photo"), "skip_photo")
    await message.answer(staff.t("broadcast.ask_photo"), reply_markup=builder.as_markup())


def _texts(data: dict[str, object]) -> Texts:
    return Texts(zh=str(data.get("template_zh") or ""), en=str(data.get("template_en") or ""))


async def on_not_text(message: Message, t: Translator) -> None:
    await message.answer(t("broadcast.bad_text", limit=MAX_TEXT))


async def on_photo(message: Message, state: FSMContext, staff: StaffContext) -> None:
    t = staff.t
    assert message.photo
    audience = await stored_audience(state)
    texts = _texts(await state.get_data())
    if audience is None or not texts.primary:
        await fresh_flow(state)
        await message.answer(t("broadcast.stale"))
        return
    try:
        await previews(
            staff.session,
            staff.config,
            staff.clock,
            audience=audience,
            texts=texts,
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
    """Send the message as a member of each language will see it, then the count and the
    choices."""
    t, session, clock = staff.t, staff.session, staff.clock
    data = await state.get_data()
    audience = await stored_audience(state)
    offer = await get_offer(session, clock, data["offer_id"]) if data.get("offer_id") else None
    photo = data.get("photo")
    if audience is None:
        await fresh_flow(state)
        await message.answer(t("broadcast.stale"))
        return
    texts = _texts(data)
    try:
        shown = await previews(
            session,
            staff.config,
            clock,
            audience=audience,
            texts=texts,
            offer=offer,
            with_photo=photo is not None,
        )
    except TemplateProblem as problem:
        await state.update_data(editing=True)
        await message.answer(_problem_text(t, problem))
        await _ask_text(message, state, staff, audience, LOCALES[0])
        return
    except CampaignError:
        await state.set_state(BroadcastFlow.audience)
        await message.answer(t("broadcast.empty_audience"))
        return
    await state.set_state(BroadcastFlow.confirm)
    await state.update_data(editing=False)
    for preview in shown:
        other = "en" if preview.locale == "zh" else "zh"
        heading = t(
            "content.preview_heading",
            language=t.plain(f"content.language.{preview.locale}"),
            n=preview.readers,
        )
        if not texts.own(preview.locale):
            heading += "\n" + t(
                "content.preview_fallback",
                language=t.plain(f"content.language.{preview.locale}"),
                other=t.plain(f"content.language.{other}"),
            )
        await message.answer(heading)
        if photo:
            await message.answer_photo(photo, caption=preview.text)
        else:
            await message.answer(preview.text)
    sample = shown[-1].sample  # the preview right above the summary
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
            n=shown[0].recipients,
            name=sample.name or sample.member_code,
            code=sample.member_code,
            coupon=offer.title if offer else t.plain("broadcast.no_coupon_short"),
        ),
        reply_markup=builder.as_markup(),
    )


async def on_edit(callback: CallbackQuery, state: FSMContext, staff: StaffContext) -> None:
    await state.update_data(editing=True)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    audience = await stored_audience(state)
    if audience is None:
        await fresh_flow(state)
        await callback.message.answer(staff.t("broadcast.stale"))
        return
    await _ask_text(callback.message, state, staff, audience, LOCALES[0])


async def _draft(message: Message, state: FSMContext, staff: StaffContext) -> CampaignDraft | None:
    """The broadcast staff confirmed, or None (and why, to staff) when it can no longer go."""
    data = await state.get_data()
    audience = await stored_audience(state)
    texts = _texts(data)
    if audience is None or not texts.primary:
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
        template=texts.own(staff.locale) or texts.primary,
        template_zh=texts.zh,
        template_en=texts.en,
        photo_file_id=data.get("photo"),
        offer_id=offer_id,
    )


async def _confirm_text(
    staff: StaffContext, audience: Audience, at: datetime, key: str, **values: object
) -> str:
    """ "Send to N members …?" with when they will actually receive it."""
    t = staff.t
    members = await count_audience(staff.session, audience)
    spread = await delivery_spread(staff.session, staff.config, audience, at)
    text = counted(t, key, members, **values)
    shown = spread_text(t, staff.config, spread)
    return f"{text}\n{shown}" if shown else text


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


async def on_send(callback: CallbackQuery, state: FSMContext, staff: StaffContext) -> None:
    """Send now: first the question "send to N members now?"."""
    t = staff.t
    audience = await stored_audience(state)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    if audience is None:
        await fresh_flow(state)
        await callback.message.answer(t("broadcast.stale"))
        return
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("content.button_send_yes"), "send_yes")
    _button(builder, t.plain("content.button_back"), "review")
    _button(builder, t.plain("broadcast.cancel"), "cancel")
    builder.adjust(1)
    text = await _confirm_text(staff, audience, staff.clock.now(), "content.confirm_send")
    await callback.message.answer(text, reply_markup=builder.as_markup())


async def on_review(callback: CallbackQuery, state: FSMContext, staff: StaffContext) -> None:
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await _show_preview(callback.message, state, staff)


async def on_send_yes(
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
    """A send time: shown back with when members will receive it, to confirm (or retype)."""
    t, zone = staff.t, staff.config.default_timezone
    try:
        when = parse_shop_time(message.text or "", zone, staff.clock.now())
    except ScheduleError as error:
        shop_zone = zone_label(zone, t.locale, staff.clock.now())
        await message.answer(t(f"broadcast.time_{error.reason}", timezone=shop_zone))
        return
    audience = await stored_audience(state)
    if audience is None:
        await fresh_flow(state)
        await message.answer(t("broadcast.stale"))
        return
    await state.update_data(when=when.isoformat())
    local = when.astimezone(member_zone(zone)).replace(tzinfo=None)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("content.button_schedule_yes"), "schedule_yes")
    _button(builder, t.plain("broadcast.cancel"), "cancel")
    builder.adjust(1)
    text = await _confirm_text(
        staff, audience, when, "content.confirm_schedule", when=local_when(t, local)
    )
    await message.answer(text + "\n" + t("content.other_time"), reply_markup=builder.as_markup())


async def on_schedule_yes(callback: CallbackQuery, state: FSMContext, staff: StaffContext) -> None:
    t, zone = staff.t, staff.config.default_timezone
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    stored = (await state.get_data()).get("when")
    when = datetime.fromisoformat(stored) if isinstance(stored, str) else None
    if when is None or when <= staff.clock.now():
        await callback.message.answer(t("broadcast.time_past", timezone=zone))
        return
    draft = await _draft(callback.message, state, staff)
    if draft is None:
        return
    try:
        campaign = await start_campaign(
            staff,
            draft,
            _audit_note(scheduled=True),
            chat_id=callback.message.chat.id,
            scheduled_at=when,
        )
    except CampaignError:
        await picker.open(callback.message, state, staff, text=t("broadcast.empty_audience"))
        return
    local = when.astimezone(member_zone(zone))
    await callback.message.answer(
        t(
            "broadcast.scheduled",
            id=campaign.id,
            when=format_day_time(local, t.locale),
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
    texts = StateFilter(BroadcastFlow.text, BroadcastFlow.text_en)
    router.message.register(on_text, texts, F.text, not_command)
    router.message.register(on_not_text, texts, ~F.text)
    router.message.register(on_photo, BroadcastFlow.photo, F.photo)
    router.message.register(on_not_photo, BroadcastFlow.photo, ~F.text.startswith("/"))
    router.message.register(on_time, BroadcastFlow.schedule, F.text, not_command)
    router.message.register(on_bad_time, BroadcastFlow.schedule, ~F.text)

    on = CDBroadcast.on
    router.callback_query.register(on_unschedule, on("unschedule"))
    picker.register(router)
    router.callback_query.register(on_skip_text, on("skip_text"), texts)
    router.callback_query.register(on_skip_photo, on("skip_photo"), BroadcastFlow.photo)
    router.callback_query.register(on_offer, on("offer"), BroadcastFlow.coupon)
    router.callback_query.register(on_send, on("send"), BroadcastFlow.confirm)
    router.callback_query.register(on_send_yes, on("send_yes"), BroadcastFlow.confirm)
    router.callback_query.register(on_review, on("review"), BroadcastFlow.confirm)
    router.callback_query.register(on_schedule_yes, on("schedule_yes"), BroadcastFlow.schedule)
    router.callback_query.register(on_later, on("later"), BroadcastFlow.confirm)
    router.callback_query.register(on_edit, on("edit"), BroadcastFlow.confirm)
    return router
