"""The loyalty loop end to end, in zh and en: a receipt after every purchase at the till; the
rewards catalogue an admin keeps; a shopper spending points on a coupon the till then redeems.
"""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from care.core.codes import display_code
from care.core.formatting import discount_label, format_day
from care.core.i18n import LOCALES_DIR, _flatten, translator
from care.loyalty.purchases import record_purchase
from care.loyalty.wording import points_text
from care.messaging.delivery import DeliveryWorker
from care.messaging.ratelimit import RateLimiter
from storage.enums import StaffRole
from storage.models import Coupon, Member, OutboxMessage, PointsEntry, Reward
from tests.conftest import RunningBot
from tests.journey_helpers import label
from tests.simulator import SimUser
from tests.staff_helpers import OWNER_ID, make_member, make_staff

SHOPPER_ID, CASHIER_ID = 2001, 800002
CODE = "K7QX2M9P"


async def deliver(app: RunningBot) -> int:
    await app.settle()
    worker = DeliveryWorker(
        app.bot, app.services.session_factory, app.config, app.clock,
        limiter=RateLimiter(500.0, 0),
    )  # fmt: skip
    return await worker.drain_once()


async def setup(app: RunningBot, locale: str, **fields: Any) -> tuple[SimUser, SimUser]:
    async with app.session() as session:
        member = await make_member(
            session, app.config, app.clock, SHOPPER_ID, "Li Lei", language_code=locale, **fields
        )
        member.member_code = CODE
        member.locale = locale
        await make_staff(session, app.config, app.clock, CASHIER_ID, StaffRole.CASHIER)
        await session.commit()
    shopper = app.user(SHOPPER_ID, first_name="Lei", language_code=locale, started=True)
    cashier = app.user(CASHIER_ID, first_name="Qian", language_code=locale, started=True)
    await deliver(app)  # the cashier's welcome to the staff
    await cashier.next_message()
    return shopper, cashier


async def member(app: RunningBot) -> Member:
    await app.settle()
    async with app.session() as session:
        found = await session.scalar(select(Member).where(Member.member_code == CODE))
        assert found is not None
        return found


RECEIPTS = {
    "en": [
        "🧾 Thank you for shopping at Test Shop!",
        "Paid ¥88.50 · earned 88 points",
        "Balance: 88 points",
        "Tier: Member · spend ¥911.50 more to reach Silver",
        "Spend your points on rewards: /rewards",
    ],
    "zh": [
        "🧾 感谢您在Test Shop购物！",
        "本次消费 ¥88.50，获得 88 积分",
        "当前余额：88 积分",
        "会员等级：普通会员，再消费 ¥911.50 即可升级为银卡会员",
        "积分可兑换礼券：/rewards",
    ],
}


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_a_purchase_at_the_till_sends_the_shopper_a_receipt(
    app: RunningBot, locale: str
) -> None:
    shopper, cashier = await setup(app, locale)
    await cashier.send(f"/purchase {CODE} 88.50 - R-1")
    await cashier.next_message()
    assert await deliver(app) == 1
    receipt = await shopper.next_message()
    assert receipt.content.splitlines() == RECEIPTS[locale]
    # The same receipt typed again is a duplicate: no second message.
    await cashier.send(f"/purchase {CODE} 88.50 - R-1")
    await cashier.next_message()
    assert await deliver(app) == 0


async def test_a_receipt_is_not_held_by_quiet_hours_and_an_import_sends_none(
    app: RunningBot,
) -> None:
    shopper, cashier = await setup(app, "en")
    app.clock.set(datetime(2026, 3, 2, 15, 30, tzinfo=UTC))  # 23:30 in Shanghai
    await cashier.send(f"/purchase {CODE} 1 - R-late")
    await cashier.next_message()
    assert await deliver(app) == 1
    assert "earned 1 point\n" in (await shopper.next_message()).content + "\n"
    async with app.session() as session:
        # An imported history, and a purchase from days ago: no receipts.
        await record_purchase(
            session, app.config, app.clock, member_id=(await member(app)).id,
            amount_minor=500, receipt_id="IMP-1", source="import",
        )  # fmt: skip
        await record_purchase(
            session, app.config, app.clock, member_id=(await member(app)).id,
            amount_minor=500, receipt_id="OLD-1",
            purchased_at=app.clock.now() - timedelta(days=3),
        )  # fmt: skip
        await session.commit()
        receipts = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.rule == "receipt")
        )
    assert receipts == 1


async def add_rewards(app: RunningBot, locale: str) -> SimUser:
    admin = app.user(OWNER_ID, first_name="Boss", language_code=locale)
    await admin.send("/reward_add 100 amount 20 20元代金券 | ¥20 voucher")
    added = (await admin.next_message()).content
    await admin.send("/reward_add 50 percent 10 九折券 | 10% off coupon")
    added_percent = (await admin.next_message()).content
    if locale == "en":
        assert added == "✅ Reward #1 added: 20元代金券 / ¥20 voucher, ¥20.00 off for 100 points."
        assert "10% off for 50 points" in added_percent
    else:
        assert added == "✅ 已添加礼券 #1：20元代金券 / ¥20 voucher，立减 ¥20.00，需 100 积分。"
        assert "9 折，需 50 积分" in added_percent
    return admin


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_a_shopper_spends_points_on_a_reward_and_the_till_redeems_it(
    app: RunningBot, locale: str
) -> None:
    shopper, cashier = await setup(app, locale, points_balance=0)
    await add_rewards(app, locale)
    await cashier.send(f"/purchase {CODE} 88 - R-2")
    await cashier.next_message()
    await deliver(app)
    await shopper.next_message()  # the receipt

    await shopper.send("/rewards")
    listing = await shopper.next_message()
    cheap = "九折券 · 50 积分" if locale == "zh" else "10% off coupon · 50 points"
    assert listing.inline_buttons == [[cheap]]  # 100 points are out of reach with 88
    assert ("9 折" if locale == "zh" else "10% off") in listing.content
    assert ("¥20 voucher" if locale == "en" else "20元代金券") in listing.content
    await shopper.press(cheap)
    confirm = await shopper.wait_until(lambda m: bool(m.inline_buttons) and m is listing)
    assert ("兑换后剩余 38 积分" if locale == "zh" else "You will have 38 points left") in (
        confirm.content
    )
    yes = label(locale, "rewards.shop.yes")
    await shopper.press(yes)
    done = await shopper.wait_until(lambda m: m is listing and not m.inline_buttons)
    async with app.session() as session:
        coupon = await session.scalar(select(Coupon).where(Coupon.source == "reward:2"))
        assert coupon is not None
        entry = await session.scalar(select(PointsEntry).order_by(PointsEntry.id.desc()))
    assert display_code(coupon.code) in done.content
    assert ("剩余积分：38 积分" if locale == "zh" else "Points left: 38 points") in done.content
    assert entry is not None and entry.delta == -50
    assert entry.note == ("九折券" if locale == "zh" else "10% off coupon")
    assert (await member(app)).points_balance == 38

    # A second tap on the used "Yes" buys nothing.
    await shopper.press_data("rw:yes:2:88", listing)
    await shopper.wait_until(lambda m: "/rewards" in m.content and m is listing)
    assert (await member(app)).points_balance == 38

    await cashier.send(f"/redeem {coupon.code}")
    redeemed = (await cashier.next_message()).content
    assert display_code(coupon.code) in redeemed and "Li Lei" in redeemed


@pytest.mark.parametrize("locale", ["en", "zh"])
async def test_without_enough_points_nothing_is_spent(app: RunningBot, locale: str) -> None:
    shopper, _ = await setup(app, locale, points_balance=30)
    admin = await add_rewards(app, locale)
    await shopper.send(label(locale, "menu.rewards"))  # the menu's button
    listing = await shopper.next_message()
    assert listing.inline_buttons == []
    assert ("再攒 20 积分" if locale == "zh" else "the first reward is 20 points away") in (
        listing.content
    )
    # A forged or stale press on a reward out of reach changes nothing.
    await shopper.press_data("rw:yes:1:30", listing)
    answer = await shopper.wait_until(lambda m: m is not listing or bool(m.edited))
    expected = "积分不足" if locale == "zh" else "Not enough points"
    assert expected in answer.content
    # A reward switched off while its button was on screen: nothing is spent.
    await admin.send("/reward_off 2")
    await admin.next_message()
    await shopper.press_data("rw:pick:2:-1", listing)
    gone = await shopper.wait_until(lambda m: "下架" in m.content or "no longer" in m.content)
    assert ("未扣除任何积分" if locale == "zh" else "Nothing was spent") in gone.content
    async with app.session() as session:
        assert await session.scalar(select(func.count()).select_from(Coupon)) == 0
    assert (await member(app)).points_balance == 30


async def test_the_admin_manages_the_catalogue_and_bad_input_is_refused(app: RunningBot) -> None:
    await setup(app, "en")
    admin = await add_rewards(app, "en")
    for command, expected in [
        ("/reward_add", "Send /reward_add POINTS KIND"),
        ("/reward_add 0 gift Cup", "“0” is not a number of points"),
        ("/reward_add 10 cash 5 Cup", "“cash” is not a kind of reward"),
        ("/reward_add 10 percent 150 Cup", "“150” does not fit"),
        ("/reward_add 10 amount -5 Cup", "“-5” does not fit"),
        ("/reward_off 99", "There is no reward #99."),
    ]:
        await admin.send(command)
        assert expected in (await admin.next_message()).content, command
    await admin.send("/reward_add 300 gift 帆布袋")
    assert "帆布袋 / 帆布袋, a free gift for 300 points" in (await admin.next_message()).content
    await admin.send("/reward_off 1")
    assert "Reward #1 (¥20 voucher) is switched off" in (await admin.next_message()).content
    await admin.send("/reward_off 1")
    assert "already switched off" in (await admin.next_message()).content
    await admin.send("/reward_list")
    listing = (await admin.next_message()).content.splitlines()
    assert listing[1] == "#2 🟢 九折券 / 10% off coupon: 10% off · 50 points · redeemed 0×"
    assert listing[2].startswith("#1 ⚪️ 20元代金券")  # cheapest first, off ones too
    async with app.session() as session:
        assert await session.scalar(select(func.count()).select_from(Reward)) == 3
    # Cashiers cannot touch the catalogue.
    cashier = app.user(CASHIER_ID, first_name="Qian", language_code="en")
    await cashier.send("/reward_add 1 gift Cup")
    assert "reward" not in (await cashier.next_message()).content.lower()


def test_the_loyalty_loop_reads_natively_in_chinese() -> None:
    """No ASCII list comma between Chinese words, no "10% 折扣", no English plural slip-ups."""
    zh = _flatten(tomllib.loads((LOCALES_DIR / "zh" / "rewards.toml").read_text("utf-8")))
    for key, text in zh.items():
        assert not re.search(r"[\u4e00-\u9fff], ?[\u4e00-\u9fff]", text), key
        assert not re.search(r"%\s*折扣", text), key
    zh_t, en_t = translator("zh"), translator("en")
    assert [discount_label(p, "zh") for p in (10, 15, 12, 5, 50)] == [
        "9 折", "8.5 折", "8.8 折", "9.5 折", "5 折"
    ]  # fmt: skip
    assert discount_label(10, "en") == "10% off"
    assert (points_text(en_t, 1), points_text(en_t, 1250)) == ("1 point", "1,250 points")
    assert points_text(zh_t, 1250) == "1,250 积分"
    assert format_day(date(2026, 11, 30), "zh", with_year=True) == "2026年11月30日"
    assert format_day(date(2026, 11, 30), "en", with_year=True) == "30 Nov 2026"
