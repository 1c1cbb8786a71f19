"""Till corrections end to end, in en and zh: /void takes back a purchase, its points and its
tier; /refund takes back proportional points; /adjust moves points with a reason; each one is
audited and the shopper is told; bad input gets a clear answer and changes nothing."""

from __future__ import annotations

from sqlalchemy import select

from care.automation import engine
from care.core.audit import recent_audit
from storage.enums import StaffRole
from storage.models import Purchase
from tests.conftest import RunningBot
from tests.simulator import SimUser
from tests.staff_helpers import OWNER_ID, make_staff
from tests.test_loyalty_loop import CASHIER_ID, CODE, deliver, member, setup

OTHER_CASHIER_ID = 800003


async def staff(app: RunningBot, locale: str) -> tuple[SimUser, SimUser, SimUser]:
    shopper, cashier = await setup(app, locale)
    async with app.session() as session:
        await make_staff(session, app.config, app.clock, OTHER_CASHIER_ID, StaffRole.CASHIER)
        await session.commit()
    admin = app.user(OWNER_ID, first_name="Boss", language_code=locale, started=True)
    other = app.user(OTHER_CASHIER_ID, first_name="Sun", language_code=locale, started=True)
    await deliver(app)
    await other.next_message()
    return shopper, cashier, admin


async def ask(user: SimUser, command: str) -> str:
    await user.send(command)
    return (await user.next_message()).content


async def test_a_void_restores_points_and_tier_and_tells_the_shopper(app: RunningBot) -> None:
    shopper, cashier, _ = await staff(app, "en")
    assert "Upgraded from Member to Silver" in await ask(cashier, f"/purchase {CODE} 1000 - R-9")
    await deliver(app)
    await shopper.next_message()  # the receipt

    assert (await ask(cashier, "/void R-9")).splitlines() == [
        "↩️ Receipt R-9 voided: ¥1,000.00 for Li Lei (K7QX2M9P).",
        "1,000 points taken back · balance 0 · Member",
        "⬇️ Tier back from Silver to Member.",
    ]
    found = await member(app)
    assert (found.points_balance, found.tier_code, found.purchase_count) == (0, "member", 0)
    assert found.total_spent_minor == 0 and found.last_purchase_at is None
    assert await deliver(app) == 1
    assert (await shopper.next_message()).content.splitlines() == [
        "↩️ Your purchase of ¥1,000.00 on 2 Mar 2026 was cancelled at the till.",
        "1,000 points taken back; your balance is now 0 points.",
        "Your tier is now Member.",
    ]
    async with app.session() as session:
        [entry] = await recent_audit(session, action="purchase.void")
    assert entry.actor_telegram_id == CASHIER_ID
    assert entry.details == {
        "purchase_id": 1, "receipt_id": "R-9", "refunded_minor": 100_000, "currency": "CNY",
        "points_taken": 1000,
    }  # fmt: skip

    # Twice, unknown, or refunding a voided purchase: refused, nothing changes.
    assert await ask(cashier, "/void R-9") == "Receipt R-9 was already voided. Nothing changed."
    assert await ask(cashier, "/void R-404") == (
        "No purchase has receipt “R-404”. Nothing changed."
    )
    assert "already voided" in await ask(cashier, "/refund R-9 5")
    assert "Send /void RECEIPT" in await ask(cashier, "/void")
    assert await deliver(app) == 0


async def test_who_may_void_and_partial_refunds(app: RunningBot) -> None:
    shopper, cashier, admin = await staff(app, "en")
    other = app.user(OTHER_CASHIER_ID, first_name="Sun", language_code="en")
    await ask(cashier, f"/purchase {CODE} 100 - R-1")
    refusal = await ask(other, "/void R-1")  # not theirs
    assert refusal.startswith("A cashier may void only a purchase they recorded, within 30")
    app.clock.advance(minutes=31)
    assert "within 30 minutes" in await ask(cashier, "/void R-1")  # too late for the cashier
    assert (await member(app)).points_balance == 100

    answer = await ask(admin, "/refund R-1 33.50")  # an admin may, any time
    assert answer.splitlines()[:2] == [
        "↩️ Refunded ¥33.50 of receipt R-1 for Li Lei (K7QX2M9P).",
        "33 points taken back · balance 67 · Member",
    ]
    assert await ask(admin, "/refund R-1 70") == (
        "Receipt R-1 was ¥100.00; at most ¥66.50 of it can still be refunded. Nothing changed."
    )
    assert "“0” is not an amount" in await ask(admin, "/refund R-1 0")
    assert "“-5” is not an amount" in await ask(admin, "/refund R-1 -5")
    assert (await member(app)).points_balance == 67
    async with app.session() as session:
        purchase = await session.scalar(select(Purchase).where(Purchase.receipt_id == "R-1"))
        assert purchase is not None
        assert (purchase.refunded_minor, purchase.points_reversed) == (3350, 33)
    await deliver(app)
    told = [m.content for m in shopper.messages][-1]
    assert told.splitlines() == [
        "↩️ ¥33.50 of your purchase on 2 Mar 2026 was refunded.",
        "33 points taken back; your balance is now 67 points.",
    ]


async def test_points_already_spent_are_reported_not_taken_below_zero(app: RunningBot) -> None:
    _, _, admin = await staff(app, "en")
    await ask(admin, f"/purchase {CODE} 100 - R-5")
    await ask(admin, f"/adjust {CODE} -80 used at the counter")
    answer = await ask(admin, "/void R-5")
    assert "20 points taken back · balance 0" in answer
    assert "80 points could not be taken back: the member had already spent them." in answer


async def test_adjust_with_a_reason_is_audited_and_told(app: RunningBot) -> None:
    shopper, cashier, admin = await staff(app, "en")
    assert await ask(admin, f"/adjust {CODE} +50 bag tore at the till") == (
        "✅ +50 points for Li Lei (K7QX2M9P) · balance 50. Reason: bag tore at the till"
    )
    assert await ask(admin, f"/adjust {CODE} -1 typo") == (
        "✅ −1 point for Li Lei (K7QX2M9P) · balance 49. Reason: typo"
    )
    for command, expected in [
        (f"/adjust {CODE} -100 too much", "Li Lei has only 49 points; taking 100 points"),
        (f"/adjust {CODE} 50 no sign", "“50” is not a points change"),
        (f"/adjust {CODE} +0 zero", "“+0” is not a points change"),
        (f"/adjust {CODE} +50", "Please add the reason"),
        ("/adjust NOSUCH22 +5 why", "No member found for “NOSUCH22”"),
        ("/adjust", "Send /adjust MEMBER ±POINTS REASON"),
    ]:
        assert expected in await ask(admin, command), command
    # A cashier cannot adjust points.
    assert "points" not in (await ask(cashier, f"/adjust {CODE} +5 friend")).lower()
    assert (await member(app)).points_balance == 49
    async with app.session() as session:
        entries = await recent_audit(session, action="points.adjust")
    assert [e.details["delta"] for e in entries if e.details] == [-1, 50]
    assert await deliver(app) == 2
    told = [m.content for m in shopper.messages[-2:]]
    assert told == [
        "⭐ 50 points added to your account: bag tore at the till. Balance: 50 points.",
        "⭐ 1 point deducted from your account: typo. Balance: 49 points.",
    ]


async def test_corrections_speak_chinese(app: RunningBot) -> None:
    shopper, cashier, admin = await staff(app, "zh")
    await ask(cashier, f"/purchase {CODE} 1000 - R-9")
    await deliver(app)
    await shopper.next_message()
    assert (await ask(cashier, "/void R-9")).splitlines() == [
        "↩️ 小票 R-9 已作废：Li Lei（K7QX2M9P）的 ¥1,000.00。",
        "扣回 1,000 积分 · 余额 0 · 普通会员",
        "⬇️ 等级从银卡会员恢复为普通会员。",
    ]
    await deliver(app)
    assert (await shopper.next_message()).content.splitlines() == [
        "↩️ 您于2026年3月2日消费的 ¥1,000.00 已在收银台撤销。",
        "已扣回 1,000 积分，当前余额 0 积分。",
        "您现在的会员等级是普通会员。",
    ]
    assert await ask(cashier, "/void R-9") == "小票 R-9 已经作废，未做任何更改。"
    assert await ask(admin, f"/adjust {CODE} +20 补偿") == (
        "✅ 已为 Li Lei（K7QX2M9P）调整 +20 积分 · 余额 20。原因：补偿"
    )
    await deliver(app)
    assert (await shopper.next_message()).content == (
        "⭐ 您的账户增加了 20 积分：补偿。当前余额 20 积分。"
    )


async def test_a_voided_upgrade_is_not_celebrated(app: RunningBot) -> None:
    _, cashier = await setup(app, "en", spend_12m_minor=100_000, tier_code="silver")
    assert "Upgraded from Silver to Gold" in await ask(cashier, f"/purchase {CODE} 4000 - R-G")
    app.clock.advance(minutes=2)
    assert "Tier back from Gold to Silver" in await ask(cashier, "/void R-G")
    app.clock.advance(minutes=1)
    outcomes = await engine.evaluate(
        app.services.session_factory, app.config, app.clock, only="tier_upgrade"
    )
    assert [o.sent for o in outcomes] == [0]  # Silver came back by a void: no party for it
