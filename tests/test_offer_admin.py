"""/offer end to end: create an offer with bad input on the way, issue coupons to a segment."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, update

from care.campaigns.launch import launch_campaign
from care.messaging.delivery import DeliveryWorker
from care.staff.roles import add_staff
from handlers.staff.offers import CDOffer
from storage.enums import CampaignStatus, StaffRole
from storage.models import AuditEntry, Campaign, Coupon, Offer, OutboxMessage
from tests.conftest import RunningBot
from tests.console_helpers import seed_member, seed_offer
from tests.test_broadcast import eventually, watchers

OWNER_ID = 900001


async def count(app: RunningBot, model: type) -> int:
    async with app.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_create_an_offer_then_issue_it_to_a_tier_with_a_notice(app: RunningBot) -> None:
    now = app.clock.now()
    async with app.session() as session:
        gold = await seed_member(
            session, now, name="Anna", telegram_id=3101, chat_id=3101, tier_code="gold"
        )
        quiet_gold = await seed_member(
            session, now, name="Bo", telegram_id=3102, chat_id=3102, tier_code="gold",
            marketing_opt_in=False,
        )  # fmt: skip
        await seed_member(session, now, name="Chen", telegram_id=3103, chat_id=3103)
        await session.commit()
    anna = app.user(3101, first_name="Anna", started=True)
    bo = app.user(3102, first_name="Bo", started=True)
    tasks = await watchers(app)
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")

    await owner.send("/offer")
    await owner.expect("No active offers yet")
    await owner.press("➕ New offer")
    await owner.expect("What is the offer called?")
    await owner.send_sticker()
    await owner.expect("Please send a title")
    await owner.send("x" * 121)
    await owner.expect("Please send a title")
    await owner.send("Spring sale")
    await owner.expect("Its name for members who read Chinese")
    await owner.press("Skip")
    await owner.expect("What does it give?")
    await owner.press("Percent off")
    await owner.expect("How many percent off?")
    for bad in ("150", "0", "ten"):
        await owner.send(bad)
        await owner.expect("whole number from 1 to 100")
    await owner.send("15")
    await owner.expect("Minimum spend")
    await owner.send("-5")
    await owner.expect("Please send an amount")
    await owner.send("100")
    await owner.expect("How many days")
    await owner.send("400")
    await owner.expect("from 1 to 365")
    await owner.press("30 days")
    summary = await owner.expect("Minimum spend: ¥100.00")
    assert "Spring sale" in summary.text and "15% off" in summary.text
    assert await count(app, Offer) == 0
    await owner.press("✅ Create offer")
    await owner.expect("Offer #1")
    async with app.session() as session:
        offer = await session.scalar(select(Offer))
        assert offer is not None
        assert (offer.kind, offer.value, offer.min_spend_minor, offer.coupon_valid_days) == (
            "percent_off", 15, 10_000, 30,
        )  # fmt: skip
        assert "offer.create" in list(await session.scalars(select(AuditEntry.action)))

    await owner.press("🎟 Issue coupons from this offer")
    await owner.expect("to whom?")
    await owner.press("By tier…")
    await owner.expect("Which tier?")
    await owner.press("Gold (2)")
    issue = await owner.expect("Members who will get a coupon: 2")
    assert "can be notified): 1" in issue.text
    await owner.press("Issue and notify members")
    await owner.expect("Issue a coupon to each of 2 members?")
    await owner.press("✅ Yes, issue")

    async def issued() -> bool:
        async with app.session() as session:
            return bool(await session.scalar(select(Campaign.launched_at)))

    await eventually(issued)
    async with app.session() as session:
        coupons = {c.member_id: c for c in await session.scalars(select(Coupon))}
        notices = list(await session.scalars(select(OutboxMessage)))
    assert set(coupons) == {gold.id, quiet_gold.id}
    assert all(c.source == "campaign" and c.campaign_id == 1 for c in coupons.values())
    assert [n.member_id for n in notices] == [gold.id]

    worker = DeliveryWorker(app.bot, app.services.session_factory, app.config, app.clock)
    assert await worker.drain_once() == 1
    notice = await anna.next_message()
    assert coupons[gold.id].code[:4] in (notice.text or "") and "Spring sale" in notice.text
    await bo.no_message_within(0.05)
    await asyncio.wait_for(tasks.wait_idle(), 5)
    await worker.drain_once()
    report = await owner.expect("Coupons #1 report")
    assert "coupons issued: 2" in report.text and "no consent 1" in report.text

    # Issuing is idempotent per (issue, member): a resumed launch adds nothing.
    async with app.session() as session:
        await session.execute(
            update(Campaign).values(
                status=CampaignStatus.SENDING, launched_at=None, launch_cursor=0
            )
        )
        await session.commit()
    factory, config, clock = app.services.session_factory, app.config, app.clock
    result = await launch_campaign(factory, config, clock, 1)
    assert result is not None and result.coupons == 0 and result.queued == 0
    assert await count(app, Coupon) == 2 and await count(app, OutboxMessage) == 2

    await owner.send("/offer")
    listing = await owner.expect("Active offers")
    assert "Spring sale" in listing.text and "issued 2" in listing.text


async def test_a_gift_offer_in_chinese_skips_the_value(app: RunningBot) -> None:
    owner = app.user(OWNER_ID, first_name="老板", language_code="zh")
    await owner.send("/offer")
    await owner.expect("还没有有效的优惠")
    await owner.press("➕ 新建优惠")
    await owner.expect("优惠叫什么名字")
    await owner.send("周年礼品")
    await owner.expect("英文版名称")
    await owner.press("跳过")
    await owner.expect("优惠内容是什么")
    await owner.press("赠品")
    await owner.expect("最低消费")
    await owner.press("无门槛")
    await owner.expect("有效多少天")
    await owner.send("14")
    await owner.expect("券有效期：发放后 14 天")
    await owner.press("✅ 创建优惠")
    await owner.expect("已创建")
    async with app.session() as session:
        offer = await session.scalar(select(Offer))
    assert offer is not None and (offer.kind, offer.value, offer.min_spend_minor) == ("gift", 0, 0)


async def test_cancel_leaves_nothing_behind(app: RunningBot) -> None:
    owner = app.user(OWNER_ID, first_name="Boss", language_code="en")
    await owner.send("/offer")
    await owner.expect("No active offers yet")
    await owner.press("➕ New offer")
    await owner.expect("What is the offer called?")
    await owner.press("Cancel")
    await owner.expect("Nothing was changed")
    await owner.send("Spring sale")
    await owner.expect("don't know that command")
    assert await count(app, Offer) == 0


@pytest.mark.parametrize(
    "data",
    [
        CDOffer(action="new").pack(),
        CDOffer(action="create").pack(),
        CDOffer(action="go", value="notify").pack(),
    ],
)
async def test_non_staff_and_cashiers_cannot_use_offers(app: RunningBot, data: str) -> None:
    async with app.session() as session:
        await seed_offer(session, app.clock.now())
        await seed_member(session, app.clock.now())
        await add_staff(
            session, app.config, app.clock, actor_telegram_id=OWNER_ID, telegram_id=4301,
            role=StaffRole.CASHIER,
        )  # fmt: skip
        await session.commit()
    cashier = app.user(4301, first_name="Wang", language_code="en")
    await cashier.send("/offer")
    await cashier.expect("for admins and owners")
    stranger = app.user(1001, first_name="Li", language_code="en")
    await stranger.send("/offer")
    await stranger.expect("don't know that command")
    for user in (cashier, stranger):
        callback_id = await user.press_data(data)
        await user.wait_callback_answer(callback_id)
        await user.no_message_within(0.05)
    assert await count(app, Offer) == 1
    assert await count(app, Coupon) == 0 and await count(app, Campaign) == 0
