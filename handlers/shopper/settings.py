"""/settings: language, offers and surveys switches, interests, timezone, birthday; /stop.

Every switch is a consent change recorded with its time. A language switch re-renders everything
at once: the settings message, and the main-menu keyboard (sent again in the new language).
While the birthday or the time zone is asked for, a question, a sentence or a photo is not an
answer: it joins the shopper's conversation (handlers/shopper/conversation.py), they are told
so, and the question is asked again.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, StateFilter, or_f
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.formatting import format_day, join_list, zone_label
from care.core.i18n import Translator, labels, translator
from care.core.timezones import (
    MAX_OFFSET_HOURS,
    MIN_OFFSET_HOURS,
    PICKER_CITIES,
    offset_zone,
    zone_for_location,
)
from care.members.registration import (
    BirthdayLocked,
    Expects,
    InputProblem,
    is_message_to_shop,
    local_today,
    parse_birthday,
    set_birthday,
    set_consent,
    set_interests,
    set_locale,
    set_timezone,
)
from handlers.middlewares import MemberInterestsMiddleware
from handlers.shopper.conversation import Kept, keep_mid_flow, kept_note
from handlers.shopper.keyboards import (
    LANGUAGE_NAMES,
    category_label,
    city_keyboard,
    drop_buttons,
    interests_keyboard,
    language_buttons,
    main_menu,
    offset_keyboard,
    share_location_keyboard,
    show,
    show_markup,
)
from handlers.shopper.menu import Registered, menu_labels
from handlers.shopper.prompts import remember_prompt
from storage.enums import ConsentKind
from storage.models import Member


class SettingsFlow(StatesGroup):
    birthday = State()
    timezone = State()


class CDSettings(CallbackData, prefix="js"):
    action: str
    value: str = ""


class CDZone(CallbackData, prefix="jz"):
    kind: str  # "city" (value: index in PICKER_CITIES), "offset" (value: hours), "offsets"
    value: int = 0


# ------------------------------------------------------------------ the overview


def overview_text(t: Translator, member: Member, clock: Clock) -> str:
    interests = join_list(
        (category_label(t, interest.category) for interest in member.interests), t.locale
    )
    if member.birthday is None:
        birthday = t.plain("settings.birthday_unset")
    else:
        birthday = format_day(member.birthday, t.locale, with_year=True)
    return t(
        "settings.text",
        language=LANGUAGE_NAMES.get(member.locale, member.locale),
        offers=t.plain("settings.on" if member.marketing_opt_in else "settings.off"),
        surveys=t.plain("settings.on" if member.surveys_opt_in else "settings.off"),
        interests=interests or t.plain("settings.none"),
        timezone=zone_label(member.timezone, t.locale, clock.now()),
        birthday=birthday,
    )


def overview_markup(t: Translator, member: Member) -> InlineKeyboardMarkup:
    def switch(key: str, value: bool) -> str:
        return t.plain(key, state=t.plain("settings.on" if value else "settings.off"))

    builder = InlineKeyboardBuilder()
    builder.button(text=t.plain("settings.btn_language"), callback_data=CDSettings(action="lang"))
    builder.button(text=t.plain("settings.btn_timezone"), callback_data=CDSettings(action="tz"))
    builder.button(
        text=switch("settings.btn_offers", member.marketing_opt_in),
        callback_data=CDSettings(action="offers"),
    )
    builder.button(
        text=switch("settings.btn_surveys", member.surveys_opt_in),
        callback_data=CDSettings(action="surveys"),
    )
    builder.button(text=t.plain("settings.btn_interests"), callback_data=CDSettings(action="int"))
    builder.button(text=t.plain("settings.btn_birthday"), callback_data=CDSettings(action="bday"))
    builder.adjust(2)
    return builder.as_markup()


async def cmd_settings(
    message: Message, state: FSMContext, member: Member, t: Translator, clock: Clock
) -> None:
    await state.clear()
    await message.answer(overview_text(t, member, clock), reply_markup=overview_markup(t, member))


async def _show_overview(
    callback: CallbackQuery, t: Translator, member: Member, clock: Clock
) -> None:
    if isinstance(callback.message, Message):
        await show(callback.message, overview_text(t, member, clock), overview_markup(t, member))


# ------------------------------------------------------------------ switches


async def on_toggle(
    callback: CallbackQuery,
    callback_data: CDSettings,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
) -> None:
    if callback_data.action == "offers":
        kind, granted = ConsentKind.MARKETING, not member.marketing_opt_in
        note = "settings.offers_now_on" if granted else "settings.offers_now_off"
    else:
        kind, granted = ConsentKind.SURVEYS, not member.surveys_opt_in
        note = "settings.surveys_now_on" if granted else "settings.surveys_now_off"
    await set_consent(session, clock, member, kind, granted, "settings")
    await callback.answer(t.plain(note))
    await _show_overview(callback, t, member, clock)


async def cmd_stop(
    message: Message, session: AsyncSession, member: Member, t: Translator, clock: Clock
) -> None:
    """/stop, the way out every marketing message ends with: offers off at once, recorded as a
    consent event from "stop_command"; one button turns them back on."""
    if member.marketing_opt_in:
        await set_consent(session, clock, member, ConsentKind.MARKETING, False, "stop_command")
    builder = InlineKeyboardBuilder()
    builder.button(
        text=t.plain("content.button_offers_back_on"), callback_data=CDSettings(action="resume")
    )
    await message.answer(t("settings.stopped"), reply_markup=builder.as_markup())


async def on_resume_offers(
    callback: CallbackQuery, session: AsyncSession, member: Member, t: Translator, clock: Clock
) -> None:
    """The button under /stop's answer: offers on again (a no-op when they already are)."""
    if not member.marketing_opt_in:
        await set_consent(session, clock, member, ConsentKind.MARKETING, True, "stop_undo")
    await callback.answer(t.plain("settings.offers_now_on"))
    if isinstance(callback.message, Message):
        await callback.message.edit_text(t("settings.offers_now_on"))


# ------------------------------------------------------------------ language


async def on_language_menu(callback: CallbackQuery, t: Translator, member: Member) -> None:
    await callback.answer()
    if isinstance(callback.message, Message):
        await show(
            callback.message,
            t("settings.choose_language"),
            language_buttons(member.locale, lambda code: CDSettings(action="setlang", value=code)),
        )


async def on_language_set(
    callback: CallbackQuery,
    callback_data: CDSettings,
    member: Member,
    clock: Clock,
) -> None:
    try:
        set_locale(member, callback_data.value, clock)
    except InputProblem:
        await callback.answer()
        return
    t = translator(member.locale)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(t("settings.language_set"), reply_markup=main_menu(t))
        await _show_overview(callback, t, member, clock)


# ------------------------------------------------------------------ interests


def _interests_markup(t: Translator, config: CareConfig, member: Member) -> InlineKeyboardMarkup:
    return interests_keyboard(
        t,
        config.categories,
        [interest.category for interest in member.interests],
        lambda index: CDSettings(action="toggle", value=str(index)),
        CDSettings(action="back"),
    )


async def on_interests_menu(
    callback: CallbackQuery, t: Translator, member: Member, config: CareConfig
) -> None:
    await callback.answer()
    if isinstance(callback.message, Message):
        await show(callback.message, t("settings.interests"), _interests_markup(t, config, member))


async def on_interest_toggle(
    callback: CallbackQuery,
    callback_data: CDSettings,
    session: AsyncSession,
    member: Member,
    t: Translator,
    config: CareConfig,
) -> None:
    index = int(callback_data.value) if callback_data.value.isdigit() else -1
    if not 0 <= index < len(config.categories):
        await callback.answer(t.plain("reg.stale"))
        return
    category = config.categories[index]
    current = [interest.category for interest in member.interests]
    wanted = [c for c in current if c != category] if category in current else [*current, category]
    await set_interests(session, member, wanted)
    await callback.answer()
    if isinstance(callback.message, Message):
        await show_markup(callback.message, _interests_markup(t, config, member))


async def on_back(callback: CallbackQuery, t: Translator, member: Member, clock: Clock) -> None:
    await callback.answer()
    await _show_overview(callback, t, member, clock)


# ------------------------------------------------------------------ birthday


async def on_birthday_menu(
    callback: CallbackQuery, state: FSMContext, t: Translator, member: Member
) -> None:
    if member.birthday_locked:
        await callback.answer()
        if isinstance(callback.message, Message):
            await callback.message.answer(
                t(
                    "settings.birthday_locked",
                    date=(
                        format_day(member.birthday, t.locale, with_year=True)
                        if member.birthday
                        else "—"
                    ),
                )
            )
        return
    await state.set_state(SettingsFlow.birthday)
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.answer(t("settings.birthday_ask"))


async def on_birthday_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    try:
        born = parse_birthday(message.text, local_today(clock, member.timezone))
    except InputProblem as problem:
        if is_message_to_shop(message.text, Expects.DATE):
            kept = await keep_mid_flow(message, state, session, member, clock, config)
            if kept != "refused":
                await message.answer(kept_note(t, kept, t("settings.birthday_ask")))
                return
        await message.answer(t(f"reg.birthday_{problem.reason}"))
        return
    await state.clear()
    try:
        set_birthday(member, born, clock)
    except BirthdayLocked:
        locked = format_day(member.birthday, t.locale, with_year=True) if member.birthday else "—"
        await message.answer(t("settings.birthday_locked", date=locked))
        return
    await message.answer(
        t("settings.birthday_saved", date=format_day(born, t.locale, with_year=True))
    )


# ------------------------------------------------------------------ timezone


async def on_timezone_menu(
    callback: CallbackQuery, state: FSMContext, t: Translator, member: Member, clock: Clock
) -> None:
    await state.set_state(SettingsFlow.timezone)
    await callback.answer()
    if not isinstance(callback.message, Message):
        return
    await callback.message.answer(
        t("tz.ask_location", zone=zone_label(member.timezone, t.locale, clock.now())),
        reply_markup=share_location_keyboard(t),
    )
    cities = await callback.message.answer(
        t("tz.ask_city"),
        reply_markup=city_keyboard(
            t, lambda index: CDZone(kind="city", value=index), CDZone(kind="offsets")
        ),
    )
    await remember_prompt(state, cities)


async def _zone_chosen(
    message: Message, state: FSMContext, member: Member, t: Translator, clock: Clock, zone: str
) -> None:
    await state.clear()
    set_timezone(member, zone, clock)
    await message.answer(
        t("tz.saved", zone=zone_label(zone, t.locale, clock.now())),
        reply_markup=main_menu(t),
    )


async def on_location(
    message: Message, state: FSMContext, member: Member, t: Translator, clock: Clock
) -> None:
    location = message.location
    assert location is not None  # the filter guarantees it
    try:
        zone = zone_for_location(location.latitude, location.longitude)
    except ValueError:
        await message.answer(t("tz.reprompt"))
        return
    await _zone_chosen(message, state, member, t, clock, zone)


async def on_zone_button(
    callback: CallbackQuery,
    callback_data: CDZone,
    state: FSMContext,
    member: Member,
    t: Translator,
    clock: Clock,
) -> None:
    if not isinstance(callback.message, Message):
        return
    if callback_data.kind == "offsets":
        await callback.answer()
        await show(
            callback.message,
            t("tz.ask_offset"),
            offset_keyboard(lambda hours: CDZone(kind="offset", value=hours)),
        )
        return
    if callback_data.kind == "city" and 0 <= callback_data.value < len(PICKER_CITIES):
        zone = PICKER_CITIES[callback_data.value].zone
    elif (
        callback_data.kind == "offset"
        and MIN_OFFSET_HOURS <= callback_data.value <= MAX_OFFSET_HOURS
    ):
        zone = offset_zone(callback_data.value)
    else:
        await callback.answer(t.plain("reg.stale"))
        return
    await callback.answer()
    await drop_buttons(callback.message)
    await _zone_chosen(callback.message, state, member, t, clock, zone)


async def on_timezone_cancel(message: Message, state: FSMContext, t: Translator) -> None:
    await state.clear()
    await message.answer(t("tz.unchanged"), reply_markup=main_menu(t))


async def on_timezone_unexpected(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    """Neither a location nor a button: a message to the shop is kept; the question again."""
    kept: Kept = "refused"
    if message.text is None or is_message_to_shop(message.text, Expects.CHOICE):
        kept = await keep_mid_flow(message, state, session, member, clock, config)
    if kept != "quiet":
        await message.answer(
            kept_note(t, kept, t("tz.reprompt")), reply_markup=share_location_keyboard(t)
        )


async def on_birthday_unexpected(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    """A photo, a sticker … instead of a date: it reaches the shop; the question again."""
    kept = await keep_mid_flow(message, state, session, member, clock, config)
    if kept != "quiet":
        await message.answer(kept_note(t, kept, t("settings.birthday_ask")))


async def leave_settings_flow(message: Message, state: FSMContext, t: Translator) -> None:
    """A command or a menu button while a setting waits for input: drop the setting, go on.

    The time-zone step swapped the main menu for its location keyboard: it comes back.
    """
    if await state.get_state() == SettingsFlow.timezone.state:
        await message.answer(t("tz.unchanged"), reply_markup=main_menu(t))
    await state.clear()
    raise SkipHandler


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(Registered())
    router.callback_query.filter(Registered())
    # The overview and the interests picker show the member's interests.
    router.message.middleware(MemberInterestsMiddleware())
    router.callback_query.middleware(MemberInterestsMiddleware())
    # Later handlers still see the old state after leave_settings_flow, so they exclude these.
    elsewhere = or_f(F.text.startswith("/"), F.text.in_(menu_labels()))
    msg = router.message
    msg.register(leave_settings_flow, StateFilter(SettingsFlow), elsewhere)
    msg.register(cmd_settings, Command("settings"))
    msg.register(cmd_settings, F.text.in_(labels("menu.settings")))
    msg.register(cmd_stop, Command("stop", "unsubscribe"))
    msg.register(on_birthday_text, SettingsFlow.birthday, F.text, ~elsewhere)
    msg.register(on_birthday_unexpected, SettingsFlow.birthday, ~elsewhere)
    msg.register(on_location, SettingsFlow.timezone, F.location)
    msg.register(on_timezone_cancel, SettingsFlow.timezone, F.text.in_(labels("tz.cancel_button")))
    msg.register(on_timezone_unexpected, SettingsFlow.timezone, ~elsewhere)

    cq = router.callback_query
    cq.register(on_toggle, CDSettings.filter(F.action.in_({"offers", "surveys"})))
    cq.register(on_resume_offers, CDSettings.filter(F.action == "resume"))
    cq.register(on_language_menu, CDSettings.filter(F.action == "lang"))
    cq.register(on_language_set, CDSettings.filter(F.action == "setlang"))
    cq.register(on_interests_menu, CDSettings.filter(F.action == "int"))
    cq.register(on_interest_toggle, CDSettings.filter(F.action == "toggle"))
    cq.register(on_back, CDSettings.filter(F.action == "back"))
    cq.register(on_birthday_menu, CDSettings.filter(F.action == "bday"))
    cq.register(on_timezone_menu, CDSettings.filter(F.action == "tz"))
    cq.register(on_zone_button, CDZone.filter())
    return router
