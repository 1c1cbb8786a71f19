"""Registration: language, privacy and consent, name, phone, birthday, interests, welcome.

Each step is an FSM state kept in the database, so a shopper who leaves half-way continues where
they were, even after a restart. Anything unexpected in a step (a command, a 10,000 character
message, a stale button, a mistyped date) gets a short re-prompt and the step stays. What is
clearly not an answer to the step but something said to the shop — a question, a sentence, a
photo, a sticker — is not lost: it joins the shopper's conversation (staff see it in the inbox,
and it stays theirs once they have joined), the shopper is told so, and the step is asked again.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import date

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, ReplyKeyboardRemove
from aiogram.utils.keyboard import InlineKeyboardBuilder
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import LOCALES, Translator, translator
from care.loyalty.cards import card_view
from care.members.referrals import tell_referrer_joined
from care.members.registration import (
    Expects,
    InputProblem,
    RegistrationAnswers,
    check_birthday,
    claim_imported,
    clean_name,
    clean_typed_name,
    complete_registration,
    is_message_to_shop,
    local_today,
    normalize_phone,
    parse_birthday,
    parse_iso_date,
    set_consent,
    set_locale,
)
from handlers.shopper.card import send_card
from handlers.shopper.conversation import Kept, keep_mid_flow, kept_note
from handlers.shopper.keyboards import (
    drop_buttons,
    interests_keyboard,
    language_buttons,
    main_menu,
    share_contact_keyboard,
    show_markup,
)
from storage.enums import ConsentKind
from storage.models import Member


class Registration(StatesGroup):
    language = State()
    consent = State()
    marketing = State()
    name = State()
    phone = State()
    birthday = State()
    interests = State()


class CDReg(CallbackData, prefix="jr"):
    step: str
    value: str = ""


# ------------------------------------------------------------------ prompts


async def ask_language(message: Message, t: Translator, name: str, shop: str) -> None:
    await message.answer(
        t("reg.hello", name=name, shop=shop),
        reply_markup=language_buttons(t.locale, lambda code: CDReg(step="lang", value=code)),
    )


def _two_buttons(t: Translator, step: str, yes_key: str, no_key: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=t.plain(yes_key), callback_data=CDReg(step=step, value="yes"))
    builder.button(text=t.plain(no_key), callback_data=CDReg(step=step, value="no"))
    builder.adjust(1)
    return builder.as_markup()


async def ask_consent(message: Message, t: Translator, shop: str) -> None:
    await message.answer(
        t("reg.privacy", shop=shop),
        reply_markup=_two_buttons(t, "consent", "reg.consent_yes", "reg.consent_no"),
    )


async def ask_marketing(message: Message, t: Translator) -> None:
    await message.answer(
        t("reg.marketing"),
        reply_markup=_two_buttons(t, "mkt", "reg.marketing_yes", "reg.marketing_no"),
    )


async def ask_name(message: Message, t: Translator, suggested: str | None) -> Message:
    markup = None
    if suggested:
        builder = InlineKeyboardBuilder()
        builder.button(
            text=t.plain("reg.name_keep", name=suggested), callback_data=CDReg(step="name")
        )
        markup = builder.as_markup()
    return await message.answer(t("reg.name"), reply_markup=markup)


async def ask_phone(message: Message, t: Translator) -> None:
    await message.answer(t("reg.phone"), reply_markup=share_contact_keyboard(t))


async def ask_birthday(message: Message, t: Translator, telegram_birthday: str | None) -> Message:
    builder = InlineKeyboardBuilder()
    if telegram_birthday:
        builder.button(
            text=t.plain("reg.birthday_use", date=telegram_birthday),
            callback_data=CDReg(step="bday", value="tg"),
        )
    builder.button(
        text=t.plain("reg.birthday_skip"), callback_data=CDReg(step="bday", value="skip")
    )
    builder.adjust(1)
    return await message.answer(t("reg.birthday"), reply_markup=builder.as_markup())


def _interests_markup(
    t: Translator, config: CareConfig, selected: list[str]
) -> InlineKeyboardMarkup:
    return interests_keyboard(
        t,
        config.categories,
        selected,
        lambda index: CDReg(step="int", value=str(index)),
        CDReg(step="done"),
    )


async def ask_interests(message: Message, t: Translator, config: CareConfig) -> None:
    await message.answer(t("reg.interests"), reply_markup=_interests_markup(t, config, []))


# What each step takes, to tell an attempt at it from a message to the shop.
EXPECTS = {
    Registration.name.state: Expects.NAME,
    Registration.phone.state: Expects.PHONE,
    Registration.birthday.state: Expects.DATE,
}

REPROMPTS = {
    Registration.language.state: "reg.reprompt_language",
    Registration.consent.state: "reg.reprompt_consent",
    Registration.marketing.state: "reg.reprompt_marketing",
    Registration.name.state: "reg.reprompt_name",
    Registration.phone.state: "reg.reprompt_phone",
    Registration.birthday.state: "reg.reprompt_birthday",
    Registration.interests.state: "reg.reprompt_interests",
}


# ------------------------------------------------------------------ entry


async def restart(state: FSMContext) -> None:
    """Put the conversation at the first step, forgetting earlier answers."""
    await state.set_state(Registration.language)
    await state.set_data({})


async def begin(
    message: Message, state: FSMContext, member: Member, t: Translator, shop_name: str
) -> None:
    """Start (or restart) registration from the first step."""
    await restart(state)
    await ask_language(message, t, member.name or "", shop_name)


# ------------------------------------------------------------------ steps


async def on_language(
    callback: CallbackQuery,
    callback_data: CDReg,
    state: FSMContext,
    member: Member,
    clock: Clock,
    shop_name: str,
) -> None:
    if not isinstance(callback.message, Message) or callback_data.value not in LOCALES:
        await callback.answer()
        return
    await state.set_state(Registration.consent)
    set_locale(member, callback_data.value, clock)
    t = translator(member.locale)
    await callback.answer()
    await drop_buttons(callback.message)
    await ask_consent(callback.message, t, shop_name)


async def on_consent(
    callback: CallbackQuery,
    callback_data: CDReg,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
) -> None:
    if not isinstance(callback.message, Message):
        return
    await callback.answer()
    if callback_data.value != "yes":
        await callback.message.answer(
            t("reg.consent_needed"),
            reply_markup=_two_buttons(t, "consent", "reg.consent_yes", "reg.consent_no"),
        )
        return
    await state.set_state(Registration.marketing)
    await set_consent(session, clock, member, ConsentKind.PROFILE, True, "registration")
    await drop_buttons(callback.message)
    await ask_marketing(callback.message, t)


async def on_marketing(
    callback: CallbackQuery,
    callback_data: CDReg,
    state: FSMContext,
    member: Member,
    t: Translator,
) -> None:
    if not isinstance(callback.message, Message):
        return
    await state.update_data(marketing=callback_data.value == "yes")
    await state.set_state(Registration.name)
    await callback.answer(
        t.plain("reg.marketing_on" if callback_data.value == "yes" else "reg.marketing_off")
    )
    await drop_buttons(callback.message)
    prompt = await ask_name(callback.message, t, _suggested_name(member))
    await state.update_data(prompt=prompt.message_id)


def _suggested_name(member: Member) -> str | None:
    try:
        return clean_name(member.name)
    except InputProblem:
        return None


async def _drop_prompt_buttons(message: Message, state: FSMContext) -> None:
    """The shopper typed instead of pressing: the prompt's buttons have had their day."""
    prompt = (await state.get_data()).get("prompt")
    if prompt is None or message.bot is None:
        return
    with suppress(TelegramBadRequest):
        await message.bot.edit_message_reply_markup(
            chat_id=message.chat.id, message_id=prompt, reply_markup=None
        )


async def _accept_name(message: Message, state: FSMContext, t: Translator, name: str) -> None:
    await state.update_data(name=name)
    await state.set_state(Registration.phone)
    await message.answer(t("reg.name_ok", name=name))
    await ask_phone(message, t)


async def on_name_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    if is_message_to_shop(message.text, Expects.NAME):
        kept = await keep_mid_flow(message, state, session, member, clock, config)
        if kept != "refused":
            await message.answer(kept_note(t, kept, t("reg.reprompt_name")))
            return
    try:
        name = clean_typed_name(message.text)
    except InputProblem as problem:
        await message.answer(t(f"reg.name_{problem.reason}", value=(message.text or "").strip()))
        return
    await _drop_prompt_buttons(message, state)
    await _accept_name(message, state, t, name)


async def on_name_keep(
    callback: CallbackQuery, state: FSMContext, member: Member, t: Translator
) -> None:
    name = _suggested_name(member)
    if name is None or not isinstance(callback.message, Message):
        await callback.answer(t.plain("reg.reprompt_name"))
        return
    await callback.answer()
    await drop_buttons(callback.message)
    await _accept_name(callback.message, state, t, name)


async def on_contact(
    message: Message,
    state: FSMContext,
    bot: Bot,
    session: AsyncSession,
    member: Member,
    t: Translator,
    config: CareConfig,
    clock: Clock,
) -> None:
    contact = message.contact
    assert contact is not None and message.from_user is not None  # the filter guarantees both
    if contact.user_id != message.from_user.id:
        await message.answer(t("reg.phone_foreign"), reply_markup=share_contact_keyboard(t))
        return
    try:
        phone = normalize_phone(contact.phone_number)
    except InputProblem:
        await message.answer(t("reg.reprompt_phone"), reply_markup=share_contact_keyboard(t))
        return
    # The shop's old customer list may know this number: then they continue as that member.
    linked = await claim_imported(session, clock, member, phone)
    if linked is not None:
        await state.update_data(phone=phone)
        await message.answer(t("reg.phone_linked"), reply_markup=ReplyKeyboardRemove())
        if linked.birthday is not None:  # the shop knows it already
            await _accept_birthday(message, state, t, config, None)
            return
        member = linked
    else:
        await message.answer(t("reg.phone_ok"), reply_markup=ReplyKeyboardRemove())
    telegram_birthday = await _telegram_birthday(bot, message.from_user.id, member, clock)
    await state.update_data(phone=phone, telegram_birthday=telegram_birthday)
    await state.set_state(Registration.birthday)
    prompt = await ask_birthday(message, t, telegram_birthday)
    await state.update_data(prompt=prompt.message_id)


async def _telegram_birthday(bot: Bot, user_id: int, member: Member, clock: Clock) -> str | None:
    """The birthdate on the shopper's Telegram profile (with a year, and plausible), if shared."""
    try:
        chat = await bot.get_chat(user_id)
    except TelegramAPIError:
        return None
    shown = chat.birthdate
    if shown is None or shown.year is None:
        return None
    try:
        born = check_birthday(
            date(shown.year, shown.month, shown.day), local_today(clock, member.timezone)
        )
    except (ValueError, InputProblem):
        return None
    return born.isoformat()


async def _accept_birthday(
    message: Message, state: FSMContext, t: Translator, config: CareConfig, born: date | None
) -> None:
    await state.update_data(birthday=born.isoformat() if born else None, interests=[])
    await state.set_state(Registration.interests)
    await ask_interests(message, t, config)


async def on_birthday_text(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
    config: CareConfig,
    clock: Clock,
) -> None:
    try:
        born = parse_birthday(message.text, local_today(clock, member.timezone))
    except InputProblem as problem:
        if is_message_to_shop(message.text, Expects.DATE):
            kept = await keep_mid_flow(message, state, session, member, clock, config)
            if kept != "refused":
                await message.answer(kept_note(t, kept, t("reg.reprompt_birthday")))
                return
        await message.answer(t(f"reg.birthday_{problem.reason}"))
        return
    await _drop_prompt_buttons(message, state)
    await _accept_birthday(message, state, t, config, born)


async def on_birthday_button(
    callback: CallbackQuery,
    callback_data: CDReg,
    state: FSMContext,
    t: Translator,
    config: CareConfig,
) -> None:
    if not isinstance(callback.message, Message):
        return
    born = None
    if callback_data.value == "tg":
        born = parse_iso_date((await state.get_data()).get("telegram_birthday"))
        if born is None:
            await callback.answer(t.plain("reg.reprompt_birthday"))
            return
    await callback.answer()
    await drop_buttons(callback.message)
    await _accept_birthday(callback.message, state, t, config, born)


async def on_interest_toggle(
    callback: CallbackQuery,
    callback_data: CDReg,
    state: FSMContext,
    t: Translator,
    config: CareConfig,
) -> None:
    if not isinstance(callback.message, Message):
        return
    index = int(callback_data.value) if callback_data.value.isdigit() else -1
    if not 0 <= index < len(config.categories):
        await callback.answer(t.plain("reg.stale"))
        return
    category = config.categories[index]
    selected: list[str] = list((await state.get_data()).get("interests", []))
    if category in selected:
        selected.remove(category)
    else:
        selected.append(category)
    await state.update_data(interests=selected)
    await callback.answer()
    await show_markup(callback.message, _interests_markup(t, config, selected))


async def on_interests_done(
    callback: CallbackQuery,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
    config: CareConfig,
    clock: Clock,
    shop_name: str,
) -> None:
    if not isinstance(callback.message, Message):
        return
    data = await state.get_data()
    if "name" not in data or "phone" not in data or member.profile_consent_at is None:
        # A conversation that lost its earlier answers: start again, politely.
        await callback.answer()
        await begin(callback.message, state, member, t, shop_name)
        return
    answers = RegistrationAnswers(
        name=data["name"],
        phone=data["phone"],
        birthday=parse_iso_date(data.get("birthday")),
        interests=[c for c in data.get("interests", []) if c in config.categories],
        marketing=bool(data.get("marketing")),
    )
    await state.clear()
    await complete_registration(session, clock, member, answers)
    await tell_referrer_joined(session, clock, config, member)
    await callback.answer()
    await drop_buttons(callback.message)
    await callback.message.answer(
        t("reg.welcome", name=member.name or "", shop=shop_name), reply_markup=main_menu(t)
    )
    view = await card_view(session, member, t.locale)
    await send_card(callback.message, t, view, config)


# ------------------------------------------------------------------ the unexpected


async def _reprompt(message: Message, state: FSMContext, t: Translator, kept: Kept) -> None:
    current = await state.get_state()
    key = REPROMPTS.get(current or "", "reg.reprompt_language")
    markup = share_contact_keyboard(t) if current == Registration.phone.state else None
    await message.answer(kept_note(t, kept, t(key)), reply_markup=markup)


async def on_unexpected_message(
    message: Message,
    state: FSMContext,
    session: AsyncSession,
    member: Member,
    t: Translator,
    clock: Clock,
    config: CareConfig,
) -> None:
    """Anything a step cannot use: a message to the shop is kept in the shopper's conversation;
    then say what the step needs, and stay in it."""
    expects = EXPECTS.get(await state.get_state() or "", Expects.CHOICE)
    kept: Kept = "refused"
    if message.text is None or is_message_to_shop(message.text, expects):
        kept = await keep_mid_flow(message, state, session, member, clock, config)
    if kept != "quiet":
        await _reprompt(message, state, t, kept)


async def on_command_mid_flow(message: Message, state: FSMContext, t: Translator) -> None:
    await message.answer(t("reg.finish_first"))
    await _reprompt(message, state, t, "refused")


async def on_stale_button(callback: CallbackQuery, t: Translator) -> None:
    await callback.answer(t.plain("reg.stale"))


def _has_member(_: object, member: Member | None) -> bool:
    # A conversation left over after the member's data was deleted belongs to nobody.
    return member is not None


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(_has_member)
    router.callback_query.filter(_has_member)
    cq = router.callback_query
    cq.register(on_language, Registration.language, CDReg.filter(F.step == "lang"))
    cq.register(on_consent, Registration.consent, CDReg.filter(F.step == "consent"))
    cq.register(on_marketing, Registration.marketing, CDReg.filter(F.step == "mkt"))
    cq.register(on_name_keep, Registration.name, CDReg.filter(F.step == "name"))
    cq.register(on_birthday_button, Registration.birthday, CDReg.filter(F.step == "bday"))
    cq.register(on_interest_toggle, Registration.interests, CDReg.filter(F.step == "int"))
    cq.register(on_interests_done, Registration.interests, CDReg.filter(F.step == "done"))
    cq.register(on_stale_button, CDReg.filter())

    msg = router.message
    msg.register(on_command_mid_flow, StateFilter(Registration), F.text.startswith("/"))
    msg.register(on_name_text, Registration.name, F.text)
    msg.register(on_contact, Registration.phone, F.contact)
    msg.register(on_birthday_text, Registration.birthday, F.text)
    msg.register(on_unexpected_message, StateFilter(Registration))
    return router
