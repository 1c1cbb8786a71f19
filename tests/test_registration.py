"""Registration end to end: the shopper presses the buttons the bot sent, in zh and en."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import func, select

from care.core.i18n import translator
from storage.models import ConsentEvent, Member, Ticket, TicketMessage
from tests.conftest import RunningBot, running_bot
from tests.journey_helpers import (
    buttons,
    label,
    member_of,
    register,
    wait_button,
    walk_to,
    without_throttling,
)
from tests.simulator import BotAPISimulator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def app(app: RunningBot) -> RunningBot:
    return without_throttling(app)


async def consent_events(app: RunningBot, member_id: int) -> list[tuple[str, bool, str]]:
    async with app.session() as session:
        rows = await session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.member_id == member_id)
            .order_by(ConsentEvent.id)
        )
        return [(row.kind, row.granted, row.source) for row in rows]


# ------------------------------------------------------------------ the whole journey


async def test_full_registration_in_chinese(app: RunningBot) -> None:
    user = app.user(3001, first_name="小美", language_code="zh-hans")
    await register(
        user, "zh", marketing=True, birthday="1990年5月17日", interests=("grocery", "beauty")
    )
    welcome, card = user.messages[-2:]
    assert "欢迎您，小美" in welcome.text
    assert welcome.reply_buttons[0] == [label("zh", "menu.card"), label("zh", "menu.offers")]
    assert card.photo is not None and card.photo.startswith(PNG_MAGIC)
    assert "会员号" in card.caption

    member = await member_of(app, 3001)
    assert member is not None
    assert member.status == "active"
    assert member.locale == "zh"
    assert member.name == "小美"
    assert member.phone == "+8613800000000"
    assert member.birthday == date(1990, 5, 17)
    assert member.birthday_md == 517 and member.birthday_locked
    assert sorted(i.category for i in member.interests) == ["beauty", "grocery"]
    assert member.marketing_opt_in and member.marketing_changed_at == app.clock.now()
    assert member.profile_consent_at == app.clock.now()
    assert member.registered_at == app.clock.now()
    assert member.member_code in card.caption
    assert await consent_events(app, member.id) == [
        ("profile", True, "registration"),
        ("marketing", True, "registration"),
    ]


async def test_full_registration_in_english_with_a_typed_name_and_no_offers(
    app: RunningBot,
) -> None:
    user = app.user(3002, first_name="Al", language_code="en-US")
    await register(user, "en", name="  Alice   Smith ")
    assert "Welcome, Alice Smith" in user.messages[-2].text
    assert "Member code" in user.messages[-1].caption
    member = await member_of(app, 3002)
    assert member is not None
    assert member.name == "Alice Smith"
    assert member.locale == "en"
    assert member.birthday is None and not member.birthday_locked
    assert member.interests == []
    assert member.marketing_opt_in is False
    # The name was typed: the "keep the Telegram name" button went away.
    name_prompt = next(m for m in user.messages if m.content == label("en", "reg.name"))
    assert name_prompt.inline_buttons == []
    # The "no thanks" is on record too, with its time.
    assert await consent_events(app, member.id) == [
        ("profile", True, "registration"),
        ("marketing", False, "registration"),
    ]


async def test_the_language_of_the_telegram_app_is_offered_first(app: RunningBot) -> None:
    for user_id, language_code, first in ((3003, "zh-hans", "中文"), (3103, "en", "English")):
        user = app.user(user_id, language_code=language_code)
        await user.send("/start")
        prompt = await wait_button(user, "English")
        assert prompt.inline_buttons[0][0] == first


async def test_the_telegram_birthdate_is_offered_as_the_default(
    app: RunningBot, sim: BotAPISimulator
) -> None:
    sim.user(3004, first_name="Bo", language_code="en", birthdate=date(1992, 3, 4))
    user = app.user(3004)
    await walk_to(user, "en", "birthday")
    use = label("en", "reg.birthday_use", date="1992-03-04")
    await wait_button(user, use)
    await user.press(use)
    await wait_button(user, label("en", "buttons.done"))
    await user.press(label("en", "buttons.done"))
    await user.wait_until(lambda m: m.photo is not None)
    member = await member_of(app, 3004)
    assert member is not None and member.birthday == date(1992, 3, 4)


async def test_marketing_consent_waits_for_the_end_of_registration(app: RunningBot) -> None:
    user = app.user(3005, language_code="en")
    await walk_to(user, "en", "marketing")
    await user.press(label("en", "reg.marketing_yes"))
    await user.expect(label("en", "reg.name")[:8])
    member = await member_of(app, 3005)
    assert member is not None
    assert member.status == "registering"
    assert member.profile_consent_at is not None
    assert member.marketing_opt_in is False


async def test_declining_the_privacy_notice_explains_and_keeps_the_question(
    app: RunningBot,
) -> None:
    user = app.user(3006, language_code="zh")
    await walk_to(user, "zh", "consent")
    await user.press(label("zh", "reg.consent_no"))
    reply = await user.expect("无法为您保留会员资格")
    assert label("zh", "reg.consent_yes") in buttons(reply)
    await user.press(label("zh", "reg.consent_yes"))
    await wait_button(user, label("zh", "reg.marketing_no"))
    member = await member_of(app, 3006)
    assert member is not None and member.profile_consent_at is not None


# ------------------------------------------------------------------ deep links


async def test_a_referral_link_records_who_invited_the_new_member(app: RunningBot) -> None:
    friend = app.user(3010, first_name="Fang", language_code="zh")
    await register(friend, "zh")
    referrer = await member_of(app, 3010)
    assert referrer is not None

    newcomer = app.user(3011, first_name="Gao", language_code="zh")
    await register(newcomer, "zh", start=f"/start ref_{referrer.member_code}")
    member = await member_of(app, 3011)
    assert member is not None and member.referrer_id == referrer.id


async def test_a_member_cannot_refer_themselves(app: RunningBot) -> None:
    user = app.user(3012, language_code="en")
    await register(user, "en")
    member = await member_of(app, 3012)
    assert member is not None
    await user.send(f"/start ref_{member.member_code}")
    await user.expect("your own invitation link")
    await user.expect("Welcome back")
    member = await member_of(app, 3012)
    assert member is not None and member.referrer_id is None


async def test_only_the_first_referrer_ever_counts(app: RunningBot) -> None:
    first, second = app.user(3013, language_code="en"), app.user(3014, language_code="en")
    await register(first, "en")
    await register(second, "en")
    first_member, second_member = await member_of(app, 3013), await member_of(app, 3014)
    assert first_member is not None and second_member is not None

    newcomer = app.user(3015, language_code="en")
    await newcomer.send(f"/start ref_{first_member.member_code}")
    await wait_button(newcomer, "English")
    # Mid-registration, a second invitation link: refused politely, registration restarts.
    await newcomer.send(f"/start ref_{second_member.member_code}")
    await newcomer.expect("already invited")
    await register(newcomer, "en", start=f"/start ref_{second_member.member_code}")
    # And once a member, no link changes it either.
    await newcomer.send(f"/start ref_{second_member.member_code}")
    await newcomer.expect("Welcome back")
    member = await member_of(app, 3015)
    assert member is not None and member.referrer_id == first_member.id


async def test_an_unknown_invitation_code_is_ignored_politely(app: RunningBot) -> None:
    user = app.user(3016, language_code="zh")
    await user.send("/start ref_NOSUCH99")
    await user.expect("邀请链接已失效")
    await wait_button(user, "中文")
    member = await member_of(app, 3016)
    assert member is not None and member.referrer_id is None


async def test_a_source_link_records_where_the_shopper_came_from(app: RunningBot) -> None:
    user = app.user(3017, language_code="en")
    await user.send("/start src_Poster-Entrance_" + "x" * 80)
    await wait_button(user, "English")
    # A later poster does not rewrite the first source.
    await user.send("/start src_receipt")
    await wait_button(user, "English")
    member = await member_of(app, 3017)
    assert member is not None
    assert member.source == ("poster-entrance_" + "x" * 80)[:64]


# ------------------------------------------------------------------ interruptions


async def test_registration_resumes_after_a_restart(
    sim: BotAPISimulator, sqlite_url: str, clock: object
) -> None:
    async with running_bot(sim, sqlite_url, clock) as first:  # type: ignore[arg-type]
        without_throttling(first)
        user = first.user(3020, first_name="Hua", language_code="zh")
        await walk_to(user, "zh", "phone")

    async with running_bot(sim, sqlite_url, clock) as second:  # type: ignore[arg-type]
        without_throttling(second)
        # The bot was restarted; the shopper simply carries on with the phone button.
        await user.press(label("zh", "reg.phone_button"))
        await wait_button(user, label("zh", "reg.birthday_skip"))
        await user.press(label("zh", "reg.birthday_skip"))
        await wait_button(user, label("zh", "buttons.done"))
        await user.press(label("zh", "buttons.done"))
        await user.wait_until(lambda m: m.photo is not None)
        member = await member_of(second, 3020)
        assert member is not None
        assert member.status == "active" and member.name == "Mei"


async def test_start_in_the_middle_restarts_cleanly(app: RunningBot) -> None:
    user = app.user(3021, language_code="en")
    await walk_to(user, "en", "birthday")
    await user.send("/start")
    prompt = await wait_button(user, "English")
    assert "choose your language" in prompt.text
    # The earlier answers are forgotten: the flow asks for everything again.
    await register(user, "en", name="Second Try")
    member = await member_of(app, 3021)
    assert member is not None and member.name == "Second Try"
    async with app.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Member).where(Member.telegram_id == 3021)
        )
    assert count == 1


async def test_a_registered_member_gets_the_menu_not_a_second_registration(
    app: RunningBot,
) -> None:
    for user_id, locale in ((3022, "zh"), (3122, "en")):
        user = app.user(user_id, language_code=locale)
        await register(user, locale)
        before = len(user.messages)
        await user.send("/start")
        await user.send("/help")
        await user.expect("/card")
        # Updates of one user are handled in order: all /start said came before the help.
        welcome_back, _help = user.messages[before:]
        assert welcome_back.reply_buttons[-1] == [label(locale, "menu.help")]
        assert "English" not in buttons(welcome_back)


# ------------------------------------------------------------------ refusals and bad input


async def test_someone_elses_contact_is_refused(app: RunningBot) -> None:
    user = app.user(3030, language_code="en")
    await walk_to(user, "en", "phone")
    await user.share_contact("+8613911112222", user_id=4242)
    refusal = await user.expect("someone else's contact")
    assert label("en", "reg.phone_button") in buttons(refusal)
    await user.press(label("en", "reg.phone_button"))
    await wait_button(user, label("en", "reg.birthday_skip"))
    member = await member_of(app, 3030)
    assert member is not None and member.phone is None  # not stored before the end


BAD_INPUT_TEXTS = {
    "zh": {
        "name_sticker": "请输入您的名字",
        "name_long": "不要超过 64 个字符",
        "phone_typed": "直接输入号码是不行的",
        "bad_date": "这个日期不存在",
        "future": "这个日期还没到呢",
        "format": "没能识别这个日期",
        "command": "我们先完成注册吧",
        "interests_text": "然后点“完成”",
    },
    "en": {
        "name_sticker": "Please type your name",
        "name_long": "at most 64 characters",
        "phone_typed": "typing the number won't work",
        "bad_date": "That date doesn't exist",
        "future": "That date is in the future",
        "format": "couldn't read that date",
        "command": "finish your registration first",
        "interests_text": "then Done",
    },
}


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_bad_input_gets_a_polite_reprompt_and_the_step_stays(
    app: RunningBot, locale: str
) -> None:
    texts = BAD_INPUT_TEXTS[locale]
    user = app.user(3031, first_name="Q", language_code=locale)
    await walk_to(user, locale, "name")

    await user.send_sticker()
    await user.expect(texts["name_sticker"])
    await user.send("y" * 10_000)
    await user.expect(texts["name_long"])
    await user.send("/frobnicate")
    await user.expect(texts["command"])
    await user.send("Qiu\x07")
    await user.expect(translator(locale).plain("reg.name_control")[:6])
    await user.send("Qiu")
    await wait_button(user, label(locale, "reg.phone_button"))

    await user.send("13800000000")
    reprompt = await user.expect(texts["phone_typed"])
    assert label(locale, "reg.phone_button") in buttons(reprompt)
    await user.send_photo()
    await user.expect(texts["phone_typed"])
    await user.press(label(locale, "reg.phone_button"))
    await wait_button(user, label(locale, "reg.birthday_skip"))

    await user.send("1990-02-30")
    await user.expect(texts["bad_date"])
    await user.send("2030-01-01")
    await user.expect(texts["future"])
    await user.send("next tuesday")
    await user.expect(texts["format"])
    await user.send_sticker()
    await user.expect(label(locale, "reg.birthday_skip"))
    await user.send("17.05.1990")
    await wait_button(user, label(locale, "buttons.done"))

    await user.send("beauty please")
    await user.expect(texts["interests_text"])
    await user.press(label(locale, "buttons.done"))
    await user.wait_until(lambda m: m.photo is not None)

    member = await member_of(app, 3031)
    assert member is not None
    assert member.name == "Qiu" and member.birthday == date(1990, 5, 17)


async def test_an_implausible_age_is_refused(app: RunningBot) -> None:
    user = app.user(3032, language_code="en")
    await walk_to(user, "en", "birthday")
    await user.send(f"{app.clock.now().year - 3}-01-01")
    await user.expect("at least 10 years old")
    await user.send("1890-01-01")
    await user.expect("over 120")
    await user.press(label("en", "reg.birthday_skip"))
    await wait_button(user, label("en", "buttons.done"))


async def test_a_stale_registration_button_is_refused_politely(app: RunningBot) -> None:
    user = app.user(3033, language_code="en")
    await walk_to(user, "en", "name")
    language_prompt = user.messages[0]
    callback = await user.press_data("jr:lang:zh", language_prompt)
    answer = await user.wait_callback_answer(callback)
    assert answer.text == label("en", "reg.stale")
    member = await member_of(app, 3033)
    assert member is not None and member.locale == "en"


async def test_a_forged_language_button_changes_nothing(app: RunningBot) -> None:
    user = app.user(3034, language_code="en")
    await user.send("/start")
    prompt = await wait_button(user, "English")
    callback = await user.press_data("jr:lang:xx", prompt)
    await user.wait_callback_answer(callback)
    await user.press("English")
    await wait_button(user, label("en", "reg.consent_yes"))
    member = await member_of(app, 3034)
    assert member is not None and member.locale == "en"


# ------------------------------------------------------------------ no lost drafts

MID_FLOW = {
    "zh": {
        "name_question": "你们周日营业吗？",
        "sentence": "我昨天在这里买的牛奶是酸的，能退吗",
        "attempt": "不告诉你",
        "interests_attempt": "美妆",
    },
    "en": {
        "name_question": "Are you open on Sunday?",
        "sentence": "I bought milk here yesterday and it was sour",
        "attempt": "next tuesday",
        "interests_attempt": "beauty please",
    },
}


def visible(html: str) -> str:
    """A catalogue text as the chat shows it (without its HTML tags)."""
    return re.sub(r"<[^>]+>", "", html)


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_messages_typed_during_registration_reach_the_shop_and_the_step_stays(
    app: RunningBot, locale: str
) -> None:
    texts, t = MID_FLOW[locale], translator(locale)
    kept = t.plain("conversation.kept")
    user = app.user(3040, first_name="Mei", language_code=locale)
    await walk_to(user, locale, "name")

    # A question is not a name: it reaches the shop, and the name is asked for again.
    await user.send(texts["name_question"])
    again = await user.expect(kept)
    assert again.text == f"{kept}\n\n{t.plain('reg.reprompt_name')}"
    await user.send("Mei")
    await wait_button(user, label(locale, "reg.phone_button"))
    await user.send(texts["sentence"])  # the phone step takes the contact button only
    phone_again = await user.expect(kept)
    assert label(locale, "reg.phone_button") in buttons(phone_again)
    await user.press(label(locale, "reg.phone_button"))
    await wait_button(user, label(locale, "reg.birthday_skip"))

    # The optional steps: a photo and a sticker are kept, an album answered once; an attempt
    # at the step is only re-asked.
    await user.send_photo(caption="receipt")
    assert visible(t.plain("reg.reprompt_birthday")) in (await user.expect(kept)).text
    await user.send_album(3)
    await user.expect(kept)
    await user.send_sticker()
    await user.expect(kept)
    await user.send(texts["attempt"])
    attempt = await user.expect(visible(t.plain("reg.birthday_format"))[:8])
    assert kept not in attempt.text
    await user.send("1990-05-17")
    await wait_button(user, label(locale, "buttons.done"))
    await user.send(texts["interests_attempt"])
    assert kept not in (await user.expect(t.plain("reg.reprompt_interests")[:6])).text
    await user.send(texts["sentence"])
    assert t.plain("reg.reprompt_interests") in (await user.expect(kept)).text
    await user.press(label(locale, "buttons.done"))
    await user.wait_until(lambda m: m.photo is not None)
    # One kept note per message, the album's one included: 2 + 1 + 1 + 1 + 1.
    assert sum(1 for m in user.messages if kept in (m.text or "")) == 6

    member = await member_of(app, 3040)
    assert member is not None and member.status == "active" and member.name == "Mei"
    async with app.session() as session:
        tickets = list(await session.scalars(select(Ticket).where(Ticket.member_id == member.id)))
        assert len(tickets) == 1  # one conversation, now the member's
        [ticket] = tickets
        messages = list(
            await session.scalars(
                select(TicketMessage)
                .where(TicketMessage.ticket_id == ticket.id)
                .order_by(TicketMessage.id)
            )
        )
    assert [(m.media_kind, m.text) for m in messages] == [
        (None, texts["name_question"]),
        (None, texts["sentence"]),
        ("photo", "receipt"),
        ("photo", None),
        ("photo", None),
        ("photo", None),
        ("sticker", None),
        (None, texts["sentence"]),
    ]
    assert member.birthday == date(1990, 5, 17)


@pytest.mark.parametrize(("locale", "greeting"), [("en", "hi!"), ("zh", "你好")])
async def test_a_greeting_at_the_name_step_is_not_taken_for_a_name(
    app: RunningBot, locale: str, greeting: str
) -> None:
    t = translator(locale)
    user = app.user(3050, first_name="Mei", language_code=locale)
    await walk_to(user, locale, "name")
    for typed in (greeting, "OK"):
        await user.send(typed)
        refusal = await user.expect(t.plain("reg.name_not_a_name", value=typed)[:12])
        assert refusal.text == t.plain("reg.name_not_a_name", value=typed)
    assert not any("Nice to meet you" in m.content or "很高兴认识您" in m.content
                   for m in user.messages)  # fmt: skip
    await user.press(label(locale, "reg.name_keep", name="Mei"))  # the prompt's button is live
    await wait_button(user, label(locale, "reg.phone_button"))
    await user.press(label(locale, "reg.phone_button"))
    await wait_button(user, label(locale, "reg.birthday_skip"))
    await user.press(label(locale, "reg.birthday_skip"))
    await wait_button(user, label(locale, "buttons.done"))
    await user.press(label(locale, "buttons.done"))
    await user.wait_until(lambda m: m.photo is not None)
    member = await member_of(app, 3050)
    assert member is not None and member.name == "Mei"
