"""At the till: /purchase books a receipt once and answers with the member's new state;
/redeem uses a coupon exactly once, even when two tills try at the same moment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from care.core.audit import recent_audit
from care.loyalty.coupons import issue_coupon
from care.loyalty.offers import rule_offer
from storage.enums import StaffRole
from storage.models import Coupon, Member, Purchase
from tests.conftest import RunningBot
from tests.simulator import SimUser
from tests.staff_helpers import OWNER_ID, make_member, make_staff

CASHIER_ID, OTHER_CASHIER_ID = 800002, 800003
CODE = "K7QX2M9P"


async def _setup(app: RunningBot, language: str = "en") -> SimUser:
    async with app.session() as session:
        member = await make_member(
            session, app.config, app.clock, 2001, "Li Lei", phone="+8613800138000"
        )
        member.member_code = CODE
        await make_staff(session, app.config, app.clock, CASHIER_ID, StaffRole.CASHIER)
        await make_staff(session, app.config, app.clock, OTHER_CASHIER_ID, StaffRole.CASHIER)
        await session.commit()
    return app.user(CASHIER_ID, first_name="Qian", language_code=language)


async def _member(app: RunningBot) -> Member:
    await app.settle()
    async with app.session() as session:
        member = await session.scalar(select(Member).where(Member.member_code == CODE))
        assert member is not None
        return member


async def _purchase_count(app: RunningBot) -> int:
    await app.settle()
    async with app.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Purchase)) or 0)


async def test_a_purchase_is_booked_and_answered_with_the_new_state(app: RunningBot) -> None:
    cashier = await _setup(app)
    await cashier.send(f"/purchase {CODE.lower()} 88.50 grocery R-1001")
    answer = (await cashier.next_message()).text
    assert answer.splitlines() == [
        f"✅ ¥88.50 recorded for Li Lei ({CODE}) · grocery",
        "+88 points · balance 88 · Member",
        "Receipt R-1001",
        "🎉 Their first purchase!",
    ]
    # By phone, without the country code; big enough to reach Silver.
    await cashier.send("/purchase 13800138000 1000 beauty R-1002")
    answer = (await cashier.next_message()).text
    assert "✅ ¥1,000.00 recorded for Li Lei" in answer
    assert "+1,000 points · balance 1,088 · Silver" in answer
    assert "⬆️ Upgraded from Member to Silver — tell them!" in answer
    assert "first purchase" not in answer

    member = await _member(app)
    assert (member.purchase_count, member.total_spent_minor) == (2, 108850)
    assert (member.points_balance, member.tier_code) == (1088, "silver")
    async with app.session() as session:
        entries = await recent_audit(session, action="purchase.record")
        recorded_by = await session.scalar(
            select(Purchase.recorded_by).where(Purchase.receipt_id == "R-1001")
        )
    assert [e.details["receipt_id"] for e in entries if e.details] == ["R-1002", "R-1001"]
    assert entries[0].actor_telegram_id == CASHIER_ID
    assert recorded_by == CASHIER_ID


async def test_the_same_receipt_is_never_counted_twice(app: RunningBot) -> None:
    cashier = await _setup(app)
    await cashier.send(f"/purchase {CODE} 50 - R-7")
    await cashier.next_message()
    await cashier.send(f"/purchase {CODE} 50 - R-7")
    assert (await cashier.next_message()).text == (
        "Already recorded: receipt R-7 was counted before. Nothing was added."
    )
    member = await _member(app)
    assert (member.purchase_count, member.points_balance) == (1, 50)
    assert await _purchase_count(app) == 1


async def test_without_a_receipt_each_message_is_its_own_receipt(app: RunningBot) -> None:
    cashier = await _setup(app)
    await cashier.send(f"/purchase {CODE} 20")
    first = (await cashier.next_message()).text
    await cashier.send(f"/purchase {CODE} 20")
    second = (await cashier.next_message()).text
    assert "Receipt tg-" in first and "Receipt tg-" in second
    assert first.splitlines()[-1] != second.splitlines()[-1]
    assert await _purchase_count(app) == 2


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("", "Send /purchase MEMBER AMOUNT"),
        (CODE, "Send /purchase MEMBER AMOUNT"),
        ("NOSUCH22 10", "No member found for “NOSUCH22”"),
        ("Li 10", "No member found for “Li”"),  # names are never guessed at the till
        (f"{CODE} -5", "“-5” is not an amount"),
        (f"{CODE} 0", "“0” is not an amount"),
        (f"{CODE} 0.00", "“0.00” is not an amount"),
        (f"{CODE} ten", "“ten” is not an amount"),
        (f"{CODE} 88.505", "“88.505” is not an amount"),
        (f"{CODE} 2000000", "2000000 is more than a single purchase can be (¥1,000,000.00)"),
        (f"{CODE} 10 toys", "“toys” is not one of the shop's categories: grocery, fresh"),
        (f"{CODE} 10 grocery R-1 extra", "Too many words."),
        (f"{CODE} 10 grocery {'R' * 65}", "at most 64 characters"),
    ],
)
async def test_refusals_change_nothing(app: RunningBot, args: str, expected: str) -> None:
    cashier = await _setup(app)
    await cashier.send(f"/purchase {args}".strip())
    assert expected in (await cashier.next_message()).text
    assert await _purchase_count(app) == 0
    async with app.session() as session:
        assert await recent_audit(session, action="purchase.record") == []


async def test_the_till_speaks_chinese(app: RunningBot) -> None:
    cashier = await _setup(app, language="zh")
    await cashier.send(f"/purchase {CODE} 88.50 fresh R-9")
    answer = (await cashier.next_message()).text
    # The category reads by its name, never by its key ("fresh").
    assert f"✅ 已为 Li Lei（{CODE}）记录 ¥88.50 · 生鲜食品" in answer
    assert "+88 积分 · 余额 88 · 普通会员" in answer
    await cashier.send(f"/purchase {CODE} -1")
    assert "不是有效金额" in (await cashier.next_message()).text


async def _coupon(app: RunningBot, *, expired: bool = False) -> str:
    async with app.session() as session:
        member = await session.scalar(select(Member).where(Member.member_code == CODE))
        assert member is not None
        offer = await rule_offer(session, app.clock, app.config, "welcome")
        coupon = await issue_coupon(
            session, app.clock, member_id=member.id, offer=offer, source="test"
        )
        if expired:
            coupon.expires_at = app.clock.now() - timedelta(days=1)
        await session.commit()
        return coupon.code


async def test_a_coupon_is_redeemed_once(app: RunningBot) -> None:
    cashier = await _setup(app)
    code = await _coupon(app)
    typed = f"{code[:4].lower()}-{code[4:].lower()}"
    await cashier.send(f"/redeem {typed}")
    answer = (await cashier.next_message()).text
    assert answer.startswith(f"✅ Coupon {code[:4]}-{code[4:]} redeemed: ")
    assert f"For Li Lei ({CODE})" in answer
    await cashier.send(f"/redeem {code}")
    assert "was already used on 2026-03-02 11:00" in (await cashier.next_message()).text
    await app.settle()
    async with app.session() as session:
        saved = await session.scalar(select(Coupon).where(Coupon.code == code))
        entries = await recent_audit(session, action="coupon.redeem")
    assert saved is not None and saved.redeemed_by == CASHIER_ID
    assert [e.target for e in entries] == [f"coupon:{code}"]


async def test_expired_and_unknown_coupons_are_refused(app: RunningBot) -> None:
    cashier = await _setup(app)
    code = await _coupon(app, expired=True)
    await cashier.send(f"/redeem {code}")
    assert "expired on 2026-03-01 11:00. Do not apply it." in (await cashier.next_message()).text
    await cashier.send("/redeem ZZZZ2222")
    assert "No coupon with the code ZZZZ2222" in (await cashier.next_message()).text
    await cashier.send("/redeem")
    assert "Send /redeem CODE" in (await cashier.next_message()).text
    await app.settle()
    async with app.session() as session:
        saved = await session.scalar(select(Coupon).where(Coupon.code == code))
        assert saved is not None and saved.redeemed_at is None
        assert await recent_audit(session, action="coupon.redeem") == []


async def test_two_tills_redeeming_the_same_code_at_once_cannot_both_succeed(
    app: RunningBot,
) -> None:
    first = await _setup(app)
    second = app.user(OTHER_CASHIER_ID, first_name="Sun", language_code="en")
    for _ in range(3):
        code = await _coupon(app)
        await first.send(f"/redeem {code}")
        await second.send(f"/redeem {code}")
        answers = [(await first.next_message()).text, (await second.next_message()).text]
        assert sum("redeemed:" in answer for answer in answers) == 1, answers
        assert sum("already used" in answer for answer in answers) == 1, answers
    await app.settle()
    async with app.session() as session:
        assert len(await recent_audit(session, action="coupon.redeem")) == 3


async def test_the_owner_may_use_the_till_too(app: RunningBot) -> None:
    await _setup(app)
    owner = app.user(OWNER_ID, language_code="en")
    await owner.send(f"/purchase {CODE} 10")
    assert "recorded for Li Lei" in (await owner.next_message()).text
