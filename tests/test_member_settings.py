"""A member's /settings: language, offers and surveys switches, interests, timezone, birthday.

(tests/test_settings.py is the foundation's test of the process settings.)
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from care.conversations.tickets import get_ticket
from care.core.i18n import translator
from care.core.timezones import PICKER_CITIES, is_valid_zone, offset_zone, zone_for_location
from care.members.registration import InputProblem, parse_birthday
from storage.models import ConsentEvent, Ticket
from tests.conftest import RunningBot
from tests.journey_helpers import label, member_of, register, wait_button, without_throttling
from tests.simulator import BotAPISimulator, SimUser
from tests.test_registration import visible


@pytest.fixture
def app(app: RunningBot) -> RunningBot:
    return without_throttling(app)


async def open_settings(user: SimUser, locale: str) -> None:
    await user.press(label(locale, "menu.settings"))
    await wait_button(user, label(locale, "settings.btn_language"))


async def consent_log(app: RunningBot, member_id: int, kind: str) -> list[tuple[bool, str]]:
    async with app.session() as session:
        rows = await session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.member_id == member_id, ConsentEvent.kind == kind)
            .order_by(ConsentEvent.id)
        )
        return [(row.granted, row.source) for row in rows]


# ------------------------------------------------------------------ language


async def test_switching_language_changes_everything_at_once(app: RunningBot) -> None:
    user = app.user(8001, language_code="en")
    await register(user, "en")
    await open_settings(user, "en")
    await user.press(label("en", "settings.btn_language"))
    await wait_button(user, "中文")
    await user.press("中文")
    confirmation = await user.expect("以后我会用中文")
    assert confirmation.reply_buttons[0] == [label("zh", "menu.card"), label("zh", "menu.offers")]
    overview = await user.wait_until(lambda m: "语言：中文" in m.content)
    assert label("zh", "settings.btn_timezone") in overview.inline_buttons[0]

    member = await member_of(app, 8001)
    assert member is not None and member.locale == "zh"
    # The Chinese menu buttons work, and answer in Chinese.
    await user.press(label("zh", "menu.card"))
    card = await user.wait_until(lambda m: m.photo is not None)
    assert "会员号" in (card.caption or "")


# ------------------------------------------------------------------ consent switches


async def test_offers_and_surveys_switches_record_each_change(app: RunningBot) -> None:
    user = app.user(8002, language_code="zh")
    await register(user, "zh", marketing=False)
    member = await member_of(app, 8002)
    assert member is not None
    await open_settings(user, "zh")

    offers_off = label("zh", "settings.btn_offers", state=label("zh", "settings.off"))
    offers_on = label("zh", "settings.btn_offers", state=label("zh", "settings.on"))
    app.clock.advance(timedelta(hours=1))
    await user.press(offers_off)
    await wait_button(user, offers_on)
    surveys_on = label("zh", "settings.btn_surveys", state=label("zh", "settings.on"))
    await user.press(surveys_on)
    await wait_button(user, label("zh", "settings.btn_surveys", state=label("zh", "settings.off")))

    member = await member_of(app, 8002)
    assert member is not None
    assert member.marketing_opt_in and member.marketing_changed_at == app.clock.now()
    assert not member.surveys_opt_in and member.surveys_changed_at == app.clock.now()
    assert await consent_log(app, member.id, "marketing") == [
        (False, "registration"),
        (True, "settings"),
    ]
    assert await consent_log(app, member.id, "surveys") == [(False, "settings")]


@pytest.mark.parametrize(
    ("locale", "said"), [("zh", "/settings → 🎁 优惠"), ("en", "/settings → 🎁 Offers")]
)
async def test_stop_turns_offers_off_at_once_and_says_how_to_undo_it(
    app: RunningBot, locale: str, said: str
) -> None:
    user = app.user(8003, language_code=locale)
    await register(user, locale, marketing=True)
    await user.send("/stop")
    await user.expect(said)
    member = await member_of(app, 8003)
    assert member is not None and member.marketing_opt_in is False
    await user.send("/unsubscribe")
    await user.expect(said)
    # Already off: nothing new to record.
    assert await consent_log(app, member.id, "marketing") == [
        (True, "registration"),
        (False, "stop_command"),
    ]


# ------------------------------------------------------------------ interests


async def test_interests_can_be_changed(app: RunningBot) -> None:
    user = app.user(8004, language_code="en")
    await register(user, "en", interests=("grocery",))
    await open_settings(user, "en")
    await user.press(label("en", "settings.btn_interests"))
    await wait_button(user, "✓ " + label("en", "interest.grocery"))
    await user.press("✓ " + label("en", "interest.grocery"))
    await wait_button(user, label("en", "interest.grocery"))
    await user.press(label("en", "interest.kids"))
    await wait_button(user, "✓ " + label("en", "interest.kids"))
    await user.press(label("en", "buttons.done"))
    await user.wait_until(lambda m: "Interests: Kids" in m.content)
    member = await member_of(app, 8004)
    assert member is not None
    assert [interest.category for interest in member.interests] == ["kids"]


# ------------------------------------------------------------------ timezone


async def test_a_shared_location_sets_the_timezone(app: RunningBot) -> None:
    user = app.user(8005, language_code="en")
    await register(user, "en")
    await open_settings(user, "en")
    await user.press(label("en", "settings.btn_timezone"))
    await wait_button(user, label("en", "tz.location_button"))
    await user.send_sticker()
    await user.expect("Please share your location")
    await user.send_location(35.6, 139.8)  # Tokyo
    saved = await user.expect("Your timezone is now Japan Time (UTC+9).")
    assert saved.reply_buttons[0][0] == label("en", "menu.card")  # the menu is back
    member = await member_of(app, 8005)
    assert member is not None and member.timezone == "Asia/Tokyo"


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_a_location_in_kolkata_yields_india_time(app: RunningBot, locale: str) -> None:
    """The zone comes from the zone boundaries, not from the nearest city on a list."""
    user = app.user(8007, language_code=locale)
    await register(user, locale)
    await open_settings(user, locale)
    await user.press(label(locale, "settings.btn_timezone"))
    await wait_button(user, label(locale, "tz.location_button"))
    await user.send_location(22.5726, 88.3639)
    saved = await user.expect("UTC+5:30")
    assert "Asia/" not in saved.content
    member = await member_of(app, 8007)
    assert member is not None and member.timezone == "Asia/Kolkata"


async def test_a_city_or_an_offset_can_be_picked(app: RunningBot) -> None:
    user = app.user(8006, language_code="zh")
    await register(user, "zh")
    await open_settings(user, "zh")
    await user.press(label("zh", "settings.btn_timezone"))
    await wait_button(user, label("zh", "tz.city.london"))
    await user.press(label("zh", "tz.city.london"))
    await user.expect("您的时区已设为英国时间（UTC+0）。")
    member = await member_of(app, 8006)
    assert member is not None and member.timezone == "Europe/London"

    await open_settings(user, "zh")
    await user.press(label("zh", "settings.btn_timezone"))
    await wait_button(user, label("zh", "tz.by_offset"))
    await user.press(label("zh", "tz.by_offset"))
    await wait_button(user, "UTC+5")
    await user.press("UTC+5")
    # A fixed offset reads as the offset: never the inverted "Etc/GMT-5".
    saved = await user.expect("您的时区已设为UTC+5。")
    assert "Etc/" not in saved.text
    member = await member_of(app, 8006)
    assert member is not None and member.timezone == "Etc/GMT-5"


async def test_keeping_the_timezone_changes_nothing(app: RunningBot) -> None:
    user = app.user(8007, language_code="en")
    await register(user, "en")
    await open_settings(user, "en")
    await user.press(label("en", "settings.btn_timezone"))
    await wait_button(user, label("en", "tz.cancel_button"))
    await user.press(label("en", "tz.cancel_button"))
    await user.expect("stays as it was")
    member = await member_of(app, 8007)
    assert member is not None and member.timezone == "Asia/Shanghai"


def test_locations_map_to_zones_without_the_internet() -> None:
    assert zone_for_location(31.2, 121.5) == "Asia/Shanghai"
    assert zone_for_location(22.3, 114.2) == "Asia/Hong_Kong"
    # Xinjiang keeps Beijing time officially (see care.core.timezones); UTC+6 is a button away.
    assert zone_for_location(43.8, 87.6) == "Asia/Shanghai"
    assert zone_for_location(40.7, -74.0) == "America/New_York"
    assert zone_for_location(-33.9, 151.2) == "Australia/Sydney"
    # The middle of the Pacific: no city near, the longitude decides.
    assert zone_for_location(0.0, -150.0) == "Etc/GMT+10"
    assert offset_zone(8) == "Etc/GMT-8" and offset_zone(-3) == "Etc/GMT+3"
    assert offset_zone(0) == "Etc/UTC"
    assert all(is_valid_zone(city.zone) for city in PICKER_CITIES)
    with pytest.raises(ValueError):
        zone_for_location(91.0, 0.0)


# ------------------------------------------------------------------ birthday


async def test_the_birthday_can_be_set_once_then_only_by_staff(app: RunningBot) -> None:
    user = app.user(8008, language_code="zh")
    await register(user, "zh")
    await open_settings(user, "zh")
    await user.press(label("zh", "settings.btn_birthday"))
    await user.expect("生日只能设置一次")
    await user.send("2001-02-29")
    await user.expect("这个日期不存在")
    await user.send("2001/2/28")
    await user.expect("生日已保存：2001年2月28日。")
    member = await member_of(app, 8008)
    assert member is not None
    assert member.birthday == date(2001, 2, 28) and member.birthday_locked

    await open_settings(user, "zh")
    await user.press(label("zh", "settings.btn_birthday"))
    await user.expect("请联系店员")
    await user.send("1999-01-01")
    # No longer waiting for a date: the text is not lost either, it reaches the shop.
    await user.expect("您的消息已转给我们的店员")
    member = await member_of(app, 8008)
    assert member is not None and member.birthday == date(2001, 2, 28)


def test_birthdays_are_read_in_the_common_forms_and_checked() -> None:
    today = date(2026, 3, 2)
    for text in (
        "1990-05-17",
        "1990/5/17",
        "1990.05.17",
        "1990年5月17日",
        "19900517",
        "17.05.1990",
    ):
        assert parse_birthday(text, today) == date(1990, 5, 17), text
    for text, reason in (
        ("1990-13-01", "impossible"),
        ("2027-01-01", "future"),
        ("2020-01-01", "too_young"),
        ("1900-01-01", "too_old"),
        ("soon", "format"),
        ("9" * 10_000, "format"),
    ):
        with pytest.raises(InputProblem) as problem:
            parse_birthday(text, today)
        assert problem.value.reason == reason, text


async def test_a_switch_on_a_message_too_old_to_edit_still_works(
    app: RunningBot, sim: BotAPISimulator
) -> None:
    user = app.user(8009, language_code="en")
    await register(user, "en", marketing=True)
    await open_settings(user, "en")
    # Telegram refuses edits of messages older than 48 hours.
    sim.fail_next("editMessageText", 400, description="Bad Request: message can't be edited")
    await user.press(label("en", "settings.btn_offers", state=label("en", "settings.on")))
    fresh = await user.expect("Offers and news: off")
    assert not fresh.edited
    member = await member_of(app, 8009)
    assert member is not None and member.marketing_opt_in is False


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_a_question_or_a_photo_while_a_setting_waits_reaches_the_shop(
    app: RunningBot, locale: str
) -> None:
    t = translator(locale)
    kept = t.plain("conversation.kept")
    question = "你们送货上门吗？" if locale == "zh" else "Do you deliver to my street?"
    user = app.user(8020, language_code=locale)
    await register(user, locale)
    await open_settings(user, locale)
    await user.press(label(locale, "settings.btn_birthday"))
    await user.expect(visible(t.plain("settings.birthday_ask"))[:8])
    await user.send(question)  # not a date: kept, and the date asked for again
    assert (await user.expect(kept)).text.endswith(visible(t.plain("settings.birthday_ask")))
    await user.send_photo(caption="my card")
    await user.expect(kept)
    await user.send("soon")  # an attempt at a date: only re-asked
    assert kept not in (await user.expect(visible(t.plain("reg.birthday_format"))[:8])).text
    await user.send("1990-05-17")
    await user.expect("1990")

    # The time zone: a sentence is kept; a menu press then closes the question cleanly.
    await open_settings(user, locale)
    await user.press(label(locale, "settings.btn_timezone"))
    cities = await wait_button(user, label(locale, "tz.by_offset"))
    await user.send(question)
    tz_again = await user.expect(kept)
    assert label(locale, "tz.cancel_button") in [b for row in tz_again.reply_buttons for b in row]
    await user.send("/card")  # the location keyboard hides the menu: a command instead
    await user.expect(visible(t.plain("tz.unchanged"))[:6])
    await user.wait_until(lambda m: m.message_id == cities.message_id and not m.inline_buttons)

    member = await member_of(app, 8020)
    assert member is not None and member.birthday == date(1990, 5, 17)
    async with app.session() as session:
        [ticket] = list(await session.scalars(select(Ticket).where(Ticket.member_id == member.id)))
        texts = [(m.media_kind, m.text) for m in (await get_ticket(session, ticket.id)).messages]
    assert texts == [(None, question), ("photo", "my card"), (None, question)]
