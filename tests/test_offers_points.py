"""/offers and /points: the shopper sees their usable coupons with QR codes, and their points."""

from __future__ import annotations

from care.core.codes import display_code
from care.core.i18n import translator
from care.core.qr import qr_png
from care.loyalty.coupons import issue_coupon, redeem_coupon
from care.loyalty.offers import create_offer, describe_offer, rule_offer
from care.loyalty.points import add_points, reason_label
from storage.enums import OfferKind, PointsReason
from tests.conftest import RunningBot
from tests.staff_helpers import OWNER_ID, make_member

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


async def test_offers_show_each_usable_coupon_with_its_qr_code(app: RunningBot) -> None:
    clock = app.clock
    async with app.session() as session:
        member = await make_member(session, app.config, clock, 2001, "Ann", language_code="en")
        welcome = await issue_coupon(
            session, clock, member_id=member.id,
            offer=await rule_offer(session, clock, app.config, "welcome"), source="welcome",
        )  # fmt: skip
        spring = await create_offer(
            session, clock, app.config, title="Spring <sale>", kind=OfferKind.AMOUNT_OFF,
            value=2000, min_spend_minor=10000, coupon_valid_days=None,
        )  # fmt: skip
        no_expiry = await issue_coupon(
            session, clock, member_id=member.id, offer=spring, source="campaign"
        )
        used = await issue_coupon(
            session, clock, member_id=member.id,
            offer=await rule_offer(session, clock, app.config, "birthday"), source="birthday",
        )  # fmt: skip
        assert (
            await redeem_coupon(session, clock, code=used.code, staff_telegram_id=OWNER_ID)
        ).status == "redeemed"
        flash = await create_offer(
            session, clock, app.config, title="Flash", kind=OfferKind.PERCENT_OFF, value=50,
            coupon_valid_days=1,
        )  # fmt: skip
        clock.advance(days=-2)
        expired = await issue_coupon(session, clock, member_id=member.id, offer=flash, source="x")
        clock.advance(days=2)
        await session.commit()

    user = app.user(2001, first_name="Ann", language_code="en")
    t = translator("en")
    for press in ("/offers", t.plain("menu.offers")):
        await user.send(press)
        header = await user.next_message()
        assert "Your coupons (2)" in header.text
        expiring, lasting = await user.next_message(), await user.next_message()

        # The welcome coupon leads (it expires): its localised description, the expiry on
        # the member's clock.
        assert expiring.photo is not None and expiring.photo.startswith(PNG_SIGNATURE)
        assert expiring.photo == qr_png(welcome.code)
        assert expiring.caption is not None
        assert describe_offer(welcome.offer, t) in expiring.caption
        assert display_code(welcome.code) in expiring.caption
        assert "Valid until 1 Apr 11:00" in expiring.caption  # 03:00 UTC in Shanghai

        # The staff offer, with its own title and no end date.
        assert lasting.photo == qr_png(no_expiry.code)
        assert lasting.caption is not None
        assert "Spring <sale>" in lasting.caption
        assert describe_offer(spring, t) in lasting.caption
        assert display_code(no_expiry.code) in lasting.caption
        assert "No expiry date" in lasting.caption

    assert len(user.messages) == 6  # the second round followed the first, nothing between
    shown = " ".join(m.content for m in user.messages)
    for hidden in (used, expired):
        assert hidden.code not in shown and display_code(hidden.code) not in shown


async def test_offers_empty_state_and_strangers(app: RunningBot) -> None:
    async with app.session() as session:
        await make_member(session, app.config, app.clock, 2002, "Wang", language_code="zh")
        await session.commit()
    user = app.user(2002, first_name="Wang", language_code="zh")
    t = translator("zh")
    await user.send(t.plain("menu.offers"))
    reply = await user.next_message()
    assert reply.text == t("offers.empty")
    assert reply.photo is None

    stranger = app.user(2003, first_name="Zhao", language_code="en")
    await stranger.send("/offers")
    assert (await stranger.next_message()).text == translator("en")("common.not_registered")
    await stranger.send("/points")
    assert (await stranger.next_message()).text == translator("en")("common.not_registered")


async def test_points_show_balance_and_latest_movements(app: RunningBot) -> None:
    clock = app.clock
    async with app.session() as session:
        zh_member = await make_member(session, app.config, clock, 2010, "Li", language_code="zh")
        await add_points(
            session, clock, member_id=zh_member.id, delta=120, reason=PointsReason.PURCHASE
        )
        clock.advance(days=1)
        await add_points(
            session, clock, member_id=zh_member.id, delta=50, reason=PointsReason.BIRTHDAY
        )
        clock.advance(days=1)
        await add_points(
            session, clock, member_id=zh_member.id, delta=-100,
            reason=PointsReason.ADJUSTMENT, note="退货 <12>",
        )  # fmt: skip
        await make_member(session, app.config, clock, 2011, "Ann", language_code="en")
        await session.commit()

    li = app.user(2010, first_name="Li", language_code="zh")
    t = translator("zh")
    await li.send(t.plain("menu.points"))
    reply = await li.next_message()
    lines = reply.text.splitlines()
    assert lines[0] == "您的积分：70"
    movements = [line for line in lines if line.startswith("3月")]
    assert movements == [
        f"3月4日  -100  {reason_label('adjustment', t)}（退货 <12>）",
        f"3月3日  +50  {reason_label('birthday', t)}",
        f"3月2日  +120  {reason_label('purchase', t)}",
    ]

    ann = app.user(2011, first_name="Ann", language_code="en")
    await ann.send("/points")
    reply = await ann.next_message()
    assert "Your points: 0" in reply.text
    assert "No movements yet" in reply.text
