"""Till amounts read as people type them, and a large purchase waits for the cashier's yes.

"12,50" and "12.50" are ¥12.50; "1,250" and "1 250" are ¥1,250; "1.250" is asked back; zero and
negative amounts are refused; at or above LARGE_PURCHASE_CONFIRM the cashier confirms with a
button, and Cancel (or a stale button) records nothing.
"""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select

from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.loyalty.till import TillInputError, match_category, parse_till_amount
from handlers.staff.till import join_digit_groups
from storage.enums import StaffRole
from storage.models import Member, Purchase
from tests.conftest import RunningBot, running_bot
from tests.simulator import BotAPISimulator, SimUser
from tests.staff_helpers import make_member, make_staff

CASHIER_ID = 800012
CODE = "ZD4VBSCU"
CONFIG = CareConfig()


@pytest.mark.parametrize(
    ("typed", "minor"),
    [
        ("12,50", 1250),
        ("12.50", 1250),
        ("12,5", 1250),
        ("1,25", 125),
        ("1,250", 125_000),
        ("1 250", 125_000),
        ("1\u202f250", 125_000),
        ("1250", 125_000),
        ("12,345", 1_234_500),
        ("1.250.000", 125_000_000),
        ("12 345,5", 1_234_550),
        ("1,250.50", 125_050),
        ("1.250,50", 125_050),
        ("¥88", 8800),
        ("88元", 8800),
        ("１２，５０", 1250),  # typed on a Chinese keyboard
    ],
)
def test_amounts_read_as_people_type_them(typed: str, minor: int) -> None:
    config = dataclasses.replace(CONFIG, currency="CNY")
    if minor > 100_000_000:  # ¥1,000,000 is more than one purchase can be
        with pytest.raises(TillInputError) as caught:
            parse_till_amount(typed, config)
        assert caught.value.reason == "absurd_amount"
        return
    assert parse_till_amount(typed, config) == minor


def test_spaced_thousands_typed_in_a_command_stay_one_amount() -> None:
    assert join_digit_groups(["C", "1", "250", "fresh"]) == ["C", "1250", "fresh"]
    assert join_digit_groups(["C", "12", "345,50"]) == ["C", "12345,50"]
    assert join_digit_groups(["C", "1", "250", "000"]) == ["C", "1250000"]
    assert join_digit_groups(["C", "88", "fresh", "123"]) == ["C", "88", "fresh", "123"]
    assert join_digit_groups(["C", "1250", "123"]) == ["C", "1250", "123"]


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("1.250", "ambiguous_amount"),
        ("0,125", "ambiguous_amount"),
        ("-5", "bad_amount"),
        ("-12,50", "bad_amount"),
        ("0", "bad_amount"),
        ("0,00", "bad_amount"),
        ("1,2500", "bad_amount"),
        ("1,250,00", "bad_amount"),
        ("1 25", "bad_amount"),
        ("1,2,3", "bad_amount"),
        (".5", "bad_amount"),
        ("ten", "bad_amount"),
    ],
)
def test_ambiguous_and_bad_amounts_are_refused(typed: str, reason: str) -> None:
    with pytest.raises(TillInputError) as caught:
        parse_till_amount(typed, CONFIG)
    assert caught.value.reason == reason


def test_a_category_may_be_typed_by_its_name_in_either_language() -> None:
    assert match_category("生鲜食品", CONFIG) == "fresh"
    assert match_category("fresh food", CONFIG) == "fresh"
    assert match_category("FRESH", CONFIG) == "fresh"


async def _setup(app: RunningBot, language: str) -> SimUser:
    async with app.session() as session:
        member = await make_member(session, app.config, app.clock, 2101, "Wang Fang")
        member.member_code = CODE
        await make_staff(session, app.config, app.clock, CASHIER_ID, StaffRole.CASHIER)
        await session.commit()
    return app.user(CASHIER_ID, first_name="Qian", language_code=language)


async def _state(app: RunningBot) -> tuple[int, int, int]:
    await app.settle()
    async with app.session() as session:
        member = await session.scalar(select(Member).where(Member.member_code == CODE))
        count = await session.scalar(select(func.count()).select_from(Purchase))
        assert member is not None
        return member.total_spent_minor, member.points_balance, int(count or 0)


@pytest.mark.parametrize(
    ("language", "recorded"),
    [("zh", "记录 ¥12.50"), ("en", "¥12.50 recorded for Wang Fang")],
)
async def test_a_comma_decimal_is_recorded_as_typed(
    app: RunningBot, language: str, recorded: str
) -> None:
    cashier = await _setup(app, language)
    await cashier.send(f"/purchase {CODE} 12,50")
    assert recorded in (await cashier.next_message()).text
    assert await _state(app) == (1250, 12, 1)
    await cashier.send(f"/purchase {CODE} 1 250 fresh")
    assert "¥1,250.00" in (await cashier.next_message()).text
    assert await _state(app) == (126_250, 12 + 1250, 2)


@pytest.mark.parametrize(
    ("language", "asked"),
    [("zh", "不是能确定的金额"), ("en", "is not an amount I can read for sure")],
)
async def test_an_ambiguous_amount_is_asked_back(
    app: RunningBot, language: str, asked: str
) -> None:
    cashier = await _setup(app, language)
    await cashier.send(f"/purchase {CODE} 1.250")
    assert asked in (await cashier.next_message()).text
    assert await _state(app) == (0, 0, 0)


@pytest.mark.parametrize(
    ("language", "question", "yes", "recorded"),
    [
        ("zh", "确认为 Wang Fang（ZD4VBSCU）记录 ¥50,000.00 吗", "✅ 确认记录", "记录 ¥50,000.00"),
        ("en", "Record ¥50,000.00 for Wang Fang (ZD4VBSCU)?", "✅ Yes, record it", "recorded"),
    ],
)
async def test_a_large_purchase_is_recorded_only_after_the_cashier_confirms(
    app: RunningBot, language: str, question: str, yes: str, recorded: str
) -> None:
    cashier = await _setup(app, language)
    await cashier.send(f"/purchase {CODE} 50,000 - R-50K")
    ask = await cashier.next_message()
    assert question in ask.text
    assert await _state(app) == (0, 0, 0)
    button = ask.inline_button(yes)
    assert button is not None
    await cashier.press(yes)
    assert recorded in (await cashier.next_message()).text
    spent, points, count = await _state(app)
    assert (spent, count) == (5_000_000, 1) and points > 0
    # The same button again (a double tap) is stale and records nothing more.
    await cashier.press_data(button["callback_data"], ask)
    await app.settle()
    assert (await _state(app))[2] == 1


@pytest.mark.parametrize(
    ("language", "no", "cancelled"),
    [("zh", "✖️ 取消", "已取消，没有记录任何消费。"), ("en", "✖️ Cancel", "Nothing was recorded")],
)
async def test_cancelling_a_large_purchase_changes_nothing(
    app: RunningBot, language: str, no: str, cancelled: str
) -> None:
    cashier = await _setup(app, language)
    await cashier.send(f"/purchase {CODE} 6000")
    await cashier.next_message()
    await cashier.press(no)
    assert cancelled in (await cashier.next_message()).text
    assert await _state(app) == (0, 0, 0)


async def test_a_confirmation_left_for_ten_minutes_records_nothing(app: RunningBot) -> None:
    cashier = await _setup(app, "en")
    await cashier.send(f"/purchase {CODE} 8000")
    await cashier.next_message()
    app.clock.advance(minutes=11)
    pressed = await cashier.press("✅ Yes, record it")
    assert isinstance(pressed, str)
    answer = await cashier.wait_callback_answer(pressed)
    assert "no longer waiting" in (answer.text or "")
    assert await _state(app) == (0, 0, 0)


async def test_the_threshold_is_the_shops_setting(
    sim: BotAPISimulator, sqlite_url: str, clock: FrozenClock
) -> None:
    async with running_bot(sim, sqlite_url, clock, large_purchase_confirm=100) as app:
        assert app.config.large_purchase_minor == 10_000
        cashier = await _setup(app, "en")
        await cashier.send(f"/purchase {CODE} 99.99")
        assert "recorded for Wang Fang" in (await cashier.next_message()).text
        await cashier.send(f"/purchase {CODE} 100")
        assert "Record ¥100.00 for Wang Fang" in (await cashier.next_message()).text
        assert (await _state(app))[2] == 1
    async with running_bot(sim, sqlite_url, clock, large_purchase_confirm=0) as app:
        cashier = app.user(CASHIER_ID, first_name="Qian", language_code="en")
        await cashier.send(f"/purchase {CODE} 900000")
        assert "recorded for Wang Fang" in (await cashier.next_message()).text
