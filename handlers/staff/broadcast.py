"""/broadcast (admin and up): audience → text → photo → coupon → preview → send now or later.

The preview is the real message rendered for a real member of the audience, beside the exact
number of recipients. Sending starts a campaign; a watcher task launches it and keeps a progress
message in the staff chat up to date until the final report arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.campaigns.campaigns import (
    CampaignError,
    ScheduleError,
    audience_label,
    campaign_report,
    cancel_campaign,
    create_campaign,
    finish_if_delivered,
    get_offer,
    launch_campaign,
    offer_overview,
    parse_shop_time,
    preview_message,
    progress_text,
    scheduled_campaigns,
    value_label,
)
from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.formatting import zone_label
from care.core.i18n import Translator, translator
from care.core.quiet_hours import member_zone
from care.core.templates import TemplateProblem, describe_placeholders
from care.loyalty.ledger import describe_offer
from care.segments.audience import (
    Audience,
    AudienceChoices,
    AudienceError,
    audience_choices,
    count_audience,
)
from handlers.staff.access import MinRole
from storage.enums import StaffRole
from storage.models import Campaign

log = logging.getLogger(__name__)

MAX_TEXT = 4096
OFFER_BUTTONS = 8


class BroadcastFlow(StatesGroup):
    audience = State()
    text = State()
    photo = State()
    coupon = State()
    confirm = State()
    schedule = State()


class CDBroadcast(CallbackData, prefix="bc"):
    """``action``: kind, pick, back, skip_photo, offer, send, later, edit, cancel, unschedule."""

    action: str
    value: str = ""


CallbackFactory = Callable[..., CallbackData]


def _button(
    builder: InlineKeyboardBuilder,
    text: str,
    action: str,
    value: str = "",
    cd: CallbackFactory = CDBroadcast,
) -> None:
    builder.button(text=text, callback_data=cd(action=action, value=value))


# ------------------------------------------------------------------ the progress watcher


class CampaignWatchers:
    """Background tasks that launch a campaign and keep its progress message current.

    One per dispatcher (created at start-up, cancelled at shutdown). Each task lives at most
    ``lifetime`` seconds; the scheduler's ``launch_due_campaigns`` finishes anything a task
    left behind (a restart), so the final report never depends on a task surviving.
    """

    def __init__(self, interval: float = 3.0, lifetime: float = 6 * 3600.0) -> None:
        self.interval = interval
        self.lifetime = lifetime
        self._tasks: set[asyncio.Task[None]] = set()

    def start(
        self,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        config: CareConfig,
        clock: Clock,
        *,
        campaign_id: int,
        chat_id: int,
        message_id: int,
        locale: str,
    ) -> None:
        task = asyncio.create_task(
            self._watch(
                bot,
                session_factory,
                config,
                clock,
                campaign_id,
                chat_id,
                message_id,
                locale,
            ),
            name=f"campaign-{campaign_id}",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(
        self,
        bot: Bot,
        session_factory: async_sessionmaker[AsyncSession],
        config: CareConfig,
        clock: Clock,
        campaign_id: int,
        chat_id: int,
        message_id: int,
        locale: str,
    ) -> None:
        t = translator(locale)
        launching: asyncio.Task[Any] | None = asyncio.create_task(
            launch_campaign(session_factory, config, clock, campaign_id)
        )
        deadline = time.monotonic() + self.lifetime
        shown = ""
        try:
            while True:
                if launching is not None:
                    await asyncio.wait({launching}, timeout=self.interval)
                    if launching.done():
                        if launching.exception() is not None:
                            # The scheduler's next tick resumes a launch that stopped half-way.
                            log.error(
                                "launch of campaign %s failed",
                                campaign_id,
                                exc_info=launching.exception(),
                            )
                        launching = None
                else:
                    await asyncio.sleep(self.interval)
                async with session_factory() as session:
                    finished = await finish_if_delivered(session, config, clock, campaign_id)
                    await session.commit()
                    report = finished or await campaign_report(session, campaign_id)
                if report is None:
                    return
                text = progress_text(t, report)
                if text != shown:
                    shown = text
                    await self._edit(bot, chat_id, message_id, text)
                if report.done or time.monotonic() > deadline:
                    return
        except Exception:
            log.exception("progress of campaign %s stopped", campaign_id)

    @staticmethod
    async def _edit(bot: Bot, chat_id: int, message_id: int, text: str) -> None:
        try:
            await bot.edit_message_text(text=text, chat_id=chat_id, message_id=message_id)
        except TelegramBadRequest as exc:
            if "not modified" not in exc.message:
                log.warning("cannot edit progress message %s: %s", message_id, exc.message)
        except TelegramAPIError as exc:
            log.warning("cannot edit progress message %s: %s", message_id, exc.message)

    async def wait_idle(self) -> None:
        """Wait for every running task (tests, and a graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def _on_startup(dispatcher: Dispatcher) -> None:
    dispatcher.workflow_data.setdefault("campaign_watchers", CampaignWatchers())


async def _on_shutdown(dispatcher: Dispatcher) -> None:
    watchers = dispatcher.workflow_data.get("campaign_watchers")
    if isinstance(watchers, CampaignWatchers):
        await watchers.cancel_all()


async def fresh_flow(state: FSMContext) -> None:
    """Forget any half-finished console flow (a no-op when there is none)."""
    if await state.get_state() is not None or await state.get_data():
        await state.clear()


# ------------------------------------------------------------------ keyboards and texts


def kind_keyboard(
    t: Translator,
    choices: AudienceChoices,
    scheduled: Sequence[Campaign] = (),
    cd: CallbackFactory = CDBroadcast,
) -> InlineKeyboardMarkup:
    """All members, or one of the four ways to narrow the audience down."""
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("broadcast.kind_all", n=choices.total), "kind", "all", cd)
    for kind in ("tier", "stage", "segment", "interest"):
        _button(builder, t.plain(f"broadcast.kind_{kind}"), "kind", kind, cd)
    for campaign in scheduled:
        _button(
            builder,
            t.plain("broadcast.unschedule", id=campaign.id),
            "unschedule",
            str(campaign.id),
        )
    _button(builder, t.plain("broadcast.cancel"), "cancel", cd=cd)
    builder.adjust(1)
    return builder.as_markup()


def value_keyboard(
    t: Translator, kind: str, choices: AudienceChoices, cd: CallbackFactory = CDBroadcast
) -> InlineKeyboardMarkup:
    """The tiers, stages, segments or interests, each with its number of members."""
    options: list[tuple[str, int]]
    if kind == "tier":
        options = [(code, n) for code, _en, _zh, n in choices.tiers]
    elif kind == "stage":
        options = choices.stages
    elif kind == "segment":
        options = choices.segments
    else:
        options = choices.interests
    builder = InlineKeyboardBuilder()
    for value, count in options:
        label = t.plain("broadcast.value_count", label=value_label(t, kind, value), n=count)
        _button(builder, label, "pick", value, cd)
    builder.adjust(2)
    back = InlineKeyboardBuilder()
    _button(back, t.plain("broadcast.back"), "back", cd=cd)
    _button(back, t.plain("broadcast.cancel"), "cancel", cd=cd)
    builder.attach(back)
    return builder.as_markup()


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


# ------------------------------------------------------------------ the flow


async def cmd_broadcast(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    t: Translator,
) -> None:
    await fresh_flow(state)
    await state.set_state(BroadcastFlow.audience)
    choices = await audience_choices(session, config.categories)
    scheduled = await scheduled_campaigns(session)
    text = t("broadcast.start", n=choices.total)
    for campaign in scheduled:
        assert campaign.scheduled_at is not None
        when = campaign.scheduled_at.astimezone(member_zone(config.default_timezone))
        text += "\n" + t(
            "broadcast.scheduled_line",
            id=campaign.id,
            when=when.strftime("%Y-%m-%d %H:%M"),
            audience=audience_label(t, campaign.audience),
        )
    await message.answer(text, reply_markup=kind_keyboard(t, choices, scheduled))


async def on_cancel(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await fresh_flow(state)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(t("broadcast.cancelled"))


async def cmd_cancel(message: Message, state: FSMContext, t: Translator) -> None:
    await fresh_flow(state)
    await message.answer(t("broadcast.cancelled"))


async def on_unschedule(
    callback: CallbackQuery,
    callback_data: CDBroadcast,
    session: AsyncSession,
    clock: Clock,
    t: Translator,
    staff_role: StaffRole,
) -> None:
    campaign_id = int(callback_data.value) if callback_data.value.isdigit() else 0
    if not await cancel_campaign(session, campaign_id):
        await callback.answer(t.plain("broadcast.unschedule_late"), show_alert=True)
        return
    await audit(
        session,
        clock,
        actor_telegram_id=callback.from_user.id,
        actor_role=staff_role,
        action="broadcast.cancel",
        target=f"campaign:{campaign_id}",
    )
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(t("broadcast.unscheduled", id=campaign_id))


async def _audience_chosen(
    callback: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    t: Translator,
    audience: Audience,
) -> None:
    choices_count = await count_audience(session, audience)
    await callback.answer()
    assert isinstance(callback.message, Message)
    if choices_count == 0:
        # Stay on this step: staff picks another audience from the same keyboard.
        await callback.message.answer(t("broadcast.empty_audience"))
        return
    await state.update_data(audience=audience.to_spec())
    await state.set_state(BroadcastFlow.text)
    await callback.message.edit_text(
        t(
            "broadcast.audience_chosen",
            audience=audience_label(t, audience.to_spec()),
            n=choices_count,
        )
    )
    await callback.message.answer(t("broadcast.ask_text") + "\n" + _placeholder_help(t))


async def on_kind(
    callback: CallbackQuery,
    callback_data: CDBroadcast,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    t: Translator,
) -> None:
    kind = callback_data.value
    if kind == "all":
        await _audience_chosen(callback, state, session, t, Audience("all"))
        return
    if kind not in ("tier", "stage", "segment", "interest"):
        await callback.answer()
        return
    await state.update_data(kind=kind)
    choices = await audience_choices(session, config.categories)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            t(f"broadcast.pick_{kind}"), reply_markup=value_keyboard(t, kind, choices)
        )


async def on_back(
    callback: CallbackQuery, session: AsyncSession, config: CareConfig, t: Translator
) -> None:
    choices = await audience_choices(session, config.categories)
    scheduled = await scheduled_campaigns(session)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(
            t("broadcast.start", n=choices.total),
            reply_markup=kind_keyboard(t, choices, scheduled),
        )


async def on_pick(
    callback: CallbackQuery,
    callback_data: CDBroadcast,
    state: FSMContext,
    session: AsyncSession,
    t: Translator,
) -> None:
    data = await state.get_data()
    try:
        audience = Audience.from_spec({"kind": data.get("kind"), "value": callback_data.value})
    except AudienceError:
        await callback.answer(t.plain("broadcast.stale"), show_alert=True)
        return
    await _audience_chosen(callback, state, session, t, audience)


async def _audience_of(state: FSMContext) -> Audience | None:
    try:
        return Audience.from_spec((await state.get_data()).get("audience") or {})
    except AudienceError:
        return None


async def on_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
) -> None:
    template = message.html_text if message.text else ""
    if not template.strip() or len(template) > MAX_TEXT:
        await message.answer(t("broadcast.bad_text", limit=MAX_TEXT))
        return
    audience = await _audience_of(state)
    if audience is None:
        await fresh_flow(state)
        await message.answer(t("broadcast.stale"))
        return
    try:
        await preview_message(session, config, clock, audience=audience, template=template)
    except TemplateProblem as problem:
        await message.answer(_problem_text(t, problem))
        return
    except CampaignError:
        await message.answer(t("broadcast.empty_audience"))
        return
    data = await state.update_data(template=template)
    if data.get("editing"):
        await _show_preview(message, state, session, config, clock, t)
        return
    await state.set_state(BroadcastFlow.photo)
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("broadcast.skip_photo"), "skip_photo")
    await message.answer(t("broadcast.ask_photo"), reply_markup=builder.as_markup())


async def on_not_text(message: Message, t: Translator) -> None:
    await message.answer(t("broadcast.bad_text", limit=MAX_TEXT))


async def on_photo(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
) -> None:
    assert message.photo
    audience = await _audience_of(state)
    template = (await state.get_data()).get("template", "")
    if audience is None or not template:
        await fresh_flow(state)
        await message.answer(t("broadcast.stale"))
        return
    try:
        await preview_message(
            session, config, clock, audience=audience, template=template, with_photo=True
        )
    except TemplateProblem as problem:
        await message.answer(t("broadcast.caption_problem", problem=problem.localized(t.locale)))
        return
    except CampaignError:
        await message.answer(t("broadcast.empty_audience"))
        return
    await state.update_data(photo=message.photo[-1].file_id)
    await _ask_coupon(message, state, session, config, clock, t)


async def on_not_photo(message: Message, t: Translator) -> None:
    builder = InlineKeyboardBuilder()
    _button(builder, t.plain("broadcast.skip_photo"), "skip_photo")
    await message.answer(t("broadcast.ask_photo"), reply_markup=builder.as_markup())


async def on_skip_photo(
    callback: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
) -> None:
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await state.update_data(photo=None)
    await _ask_coupon(callback.message, state, session, config, clock, t)


async def _ask_coupon(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
) -> None:
    offers = await offer_overview(session, clock, limit=OFFER_BUTTONS)
    if not offers:
        await state.update_data(offer_id=None)
        await message.answer(t("broadcast.no_offers"))
        await _show_preview(message, state, session, config, clock, t)
        return
    await state.set_state(BroadcastFlow.coupon)
    builder = InlineKeyboardBuilder()
    for line in offers:
        label = t.plain(
            "broadcast.offer_button",
            title=line.offer.title,
            offer=describe_offer(line.offer, t),
        )
        _button(builder, label, "offer", str(line.offer.id))
    _button(builder, t.plain("broadcast.no_coupon"), "offer", "0")
    builder.adjust(1)
    await message.answer(t("broadcast.ask_coupon"), reply_markup=builder.as_markup())


async def on_offer(
    callback: CallbackQuery,
    callback_data: CDBroadcast,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
) -> None:
    offer_id = int(callback_data.value) if callback_data.value.isdigit() else 0
    if offer_id and await get_offer(session, clock, offer_id) is None:
        await callback.answer(t.plain("broadcast.offer_gone"), show_alert=True)
        return
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    await state.update_data(offer_id=offer_id or None)
    await _show_preview(callback.message, state, session, config, clock, t)


async def _show_preview(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
) -> None:
    """Send the message as the sample member will see it, then the count and the choices."""
    data = await state.get_data()
    audience = await _audience_of(state)
    offer = await get_offer(session, clock, data["offer_id"]) if data.get("offer_id") else None
    photo = data.get("photo")
    if audience is None:
        await fresh_flow(state)
        await message.answer(t("broadcast.stale"))
        return
    try:
        preview = await preview_message(
            session,
            config,
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


async def _start_campaign(
    message: Message,
    actor_id: int,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
    staff_role: StaffRole,
    *,
    scheduled_at: Any = None,
    progress_message_id: int | None = None,
) -> int | None:
    data = await state.get_data()
    audience = await _audience_of(state)
    if audience is None:
        await fresh_flow(state)
        await message.answer(t("broadcast.stale"))
        return None
    offer_id = data.get("offer_id")
    if offer_id and await get_offer(session, clock, offer_id) is None:
        await message.answer(t("broadcast.offer_gone"))
        return None
    try:
        campaign = await create_campaign(
            session,
            clock,
            audience=audience,
            template=data.get("template", ""),
            created_by=actor_id,
            locale=t.locale,
            photo_file_id=data.get("photo"),
            offer_id=offer_id,
            scheduled_at=scheduled_at,
            progress_chat_id=message.chat.id,
            progress_message_id=progress_message_id,
        )
    except CampaignError:
        await state.set_state(BroadcastFlow.audience)
        await message.answer(t("broadcast.empty_audience"))
        return None
    await fresh_flow(state)
    await audit(
        session,
        clock,
        actor_telegram_id=actor_id,
        actor_role=staff_role,
        action="broadcast.schedule" if scheduled_at else "broadcast.send",
        target=f"campaign:{campaign.id}",
        details={
            "audience": campaign.audience,
            "recipients": campaign.recipients,
            "offer_id": campaign.offer_id,
            "photo": campaign.photo_file_id is not None,
            "scheduled_at": campaign.scheduled_at.isoformat() if campaign.scheduled_at else None,
        },
    )
    return campaign.id


async def on_send(
    callback: CallbackQuery,
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
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    progress = await callback.message.answer(t("campaign.progress_starting"))
    campaign_id = await _start_campaign(
        callback.message,
        callback.from_user.id,
        state,
        session,
        config,
        clock,
        t,
        staff_role,
        progress_message_id=progress.message_id,
    )
    if campaign_id is None:
        await progress.delete()
        return
    # The launch runs outside this update, in its own sessions: it must see the campaign.
    await session.commit()
    campaign_watchers.start(
        bot,
        session_factory,
        config,
        clock,
        campaign_id=campaign_id,
        chat_id=progress.chat.id,
        message_id=progress.message_id,
        locale=t.locale,
    )


async def on_later(
    callback: CallbackQuery, state: FSMContext, config: CareConfig, clock: Clock, t: Translator
) -> None:
    await state.set_state(BroadcastFlow.schedule)
    await callback.answer()
    assert isinstance(callback.message, Message)
    await callback.message.edit_reply_markup(reply_markup=None)
    example = clock.now().astimezone(member_zone(config.default_timezone))
    await callback.message.answer(
        t(
            "broadcast.ask_time",
            timezone=zone_label(config.default_timezone, t.locale, clock.now()),
            example=example.strftime("%Y-%m-%d 18:30"),
        )
    )


async def on_time(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    t: Translator,
    staff_role: StaffRole,
) -> None:
    assert message.from_user is not None
    try:
        when = parse_shop_time(message.text or "", config.default_timezone, clock.now())
    except ScheduleError as error:
        shop_zone = zone_label(config.default_timezone, t.locale, clock.now())
        await message.answer(t(f"broadcast.time_{error.reason}", timezone=shop_zone))
        return
    campaign_id = await _start_campaign(
        message,
        message.from_user.id,
        state,
        session,
        config,
        clock,
        t,
        staff_role,
        scheduled_at=when,
    )
    if campaign_id is None:
        return
    local = when.astimezone(member_zone(config.default_timezone))
    await message.answer(
        t(
            "broadcast.scheduled",
            id=campaign_id,
            when=local.strftime("%Y-%m-%d %H:%M"),
            timezone=zone_label(config.default_timezone, t.locale, clock.now()),
        )
    )


async def on_bad_time(message: Message, config: CareConfig, clock: Clock, t: Translator) -> None:
    shop_zone = zone_label(config.default_timezone, t.locale, clock.now())
    await message.answer(t("broadcast.time_format", timezone=shop_zone))


def build_router() -> Router:
    router = Router(name=__name__)
    router.startup.register(_on_startup)
    router.shutdown.register(_on_shutdown)
    router.message.filter(F.chat.type == ChatType.PRIVATE, MinRole(StaffRole.ADMIN))
    router.callback_query.filter(MinRole(StaffRole.ADMIN))

    router.message.register(cmd_broadcast, Command("broadcast"))
    router.message.register(cmd_cancel, Command("cancel"), StateFilter(BroadcastFlow))
    not_command = ~F.text.startswith("/")
    router.message.register(on_text, BroadcastFlow.text, F.text, not_command)
    router.message.register(on_not_text, BroadcastFlow.text, ~F.text)
    router.message.register(on_photo, BroadcastFlow.photo, F.photo)
    router.message.register(on_not_photo, BroadcastFlow.photo, ~F.text.startswith("/"))
    router.message.register(on_time, BroadcastFlow.schedule, F.text, not_command)
    router.message.register(on_bad_time, BroadcastFlow.schedule, ~F.text)

    def on(action: str) -> Any:
        return CDBroadcast.filter(F.action == action)

    router.callback_query.register(on_unschedule, on("unschedule"))
    router.callback_query.register(on_cancel, on("cancel"), StateFilter(BroadcastFlow))
    router.callback_query.register(on_kind, on("kind"), BroadcastFlow.audience)
    router.callback_query.register(on_back, on("back"), BroadcastFlow.audience)
    router.callback_query.register(on_pick, on("pick"), BroadcastFlow.audience)
    router.callback_query.register(on_skip_photo, on("skip_photo"), BroadcastFlow.photo)
    router.callback_query.register(on_offer, on("offer"), BroadcastFlow.coupon)
    router.callback_query.register(on_send, on("send"), BroadcastFlow.confirm)
    router.callback_query.register(on_later, on("later"), BroadcastFlow.confirm)
    router.callback_query.register(on_edit, on("edit"), BroadcastFlow.confirm)
    return router
