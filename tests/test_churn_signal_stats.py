"""/stats tells the owner which signal says who is likely to leave and why, in zh and en: the
one chosen from the shop's own backtest with its score out of 100, the default while the history
is too thin, the gap rule before the model has worked at all; /member says when a member is
likely to leave by the model signal the shop chose."""

from __future__ import annotations

from datetime import date

import pytest

from care.staff.roles import add_staff
from storage.enums import StaffRole
from storage.models import ChurnSignal, MemberValue
from tests.conftest import RunningBot
from tests.test_member_view import CASHIER_ID, CODE, _rich_member

OWNER_ID, ADMIN_ID = 900001, 4242


async def stats_line(app: RunningBot, user_id: int, locale: str) -> str:
    user = app.user(user_id, first_name="Boss", language_code=locale)
    await user.send("/stats")
    text = (await user.expect("Shop numbers" if locale == "en" else "店铺数据")).text
    return next(line for line in text.splitlines() if line.startswith("🚪"))


async def test_stats_say_which_churn_signal_the_shop_uses_and_why(app: RunningBot) -> None:
    async with app.session() as session:
        await add_staff(
            session, app.config, app.clock, actor_telegram_id=OWNER_ID, telegram_id=ADMIN_ID,
            role=StaffRole.ADMIN,
        )  # fmt: skip
        await session.commit()

    before = await stats_line(app, OWNER_ID, "en")
    assert "time since the last visit against their usual rhythm" in before
    assert "until the customer-value model has enough customers" in before

    async with app.session() as session:
        session.add(
            ChurnSignal(
                id=1, signal="expected_purchases", reason="thin_history", customers=1,
                returners=0, cutoff=date(2025, 12, 1), holdout_until=date(2026, 3, 1),
                chosen_at=app.clock.now(),
            )
        )  # fmt: skip
        await session.commit()
    thin = await stats_line(app, OWNER_ID, "en")
    assert "expected purchases in the next 90 days" in thin and "for now" in thin
    assert "(1 customer before 1 Dec, 0 of them came back; the test needs 200 and 20)" in thin
    thin_zh = await stats_line(app, ADMIN_ID, "zh")
    assert "暂按未来 90 天的预计购买次数判断" in thin_zh
    assert "12月1日前有 1 位顾客" in thin_zh

    async with app.session() as session:
        row = await session.get(ChurnSignal, 1)
        assert row is not None
        row.signal, row.reason = "p_alive", "backtest"
        row.auc_p_alive, row.auc_expected_purchases, row.auc_gap_rule = 0.8134, 0.7702, None
        row.customers, row.returners = 2357, 700
        await session.commit()
    chosen = await stats_line(app, OWNER_ID, "en")
    assert "judged by the chance they are still a customer, chosen 2 Mar" in chosen
    assert "it picks out the leaver 81 times in 100 (guessing: 50)" in chosen
    assert (
        "The others: expected purchases in the next 90 days 77, time since the last visit "
        "against their usual rhythm –." in chosen
    )
    chosen_zh = await stats_line(app, ADMIN_ID, "zh")
    assert "按仍是本店顾客的概率判断：3月2日" in chosen_zh
    assert "每 100 次能认出流失的那位 81 次（随便猜是 50 次）" in chosen_zh
    assert (
        "其他方法：未来 90 天的预计购买次数 77、距上次购买的时间与平时购买间隔之比 –。"
        in chosen_zh
    )


AT_RISK = {
    "en": "🚪 Likely to leave since 2 Mar 2026, by the way this shop judges it (the chance they "
    "are still a customer)",
    "zh": "🚪 自2026年3月2日起可能流失（按本店的判断方法：仍是本店顾客的概率）",
}


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_member_says_they_are_likely_to_leave_by_the_shops_signal(
    app: RunningBot, language: str
) -> None:
    member_id = await _rich_member(app)
    now = app.clock.now()
    async with app.session() as session:
        session.add(
            MemberValue(
                member_id=member_id, p_alive=0.31, purchases_30d=0.41, purchases_90d=1.18,
                spend_per_purchase_minor=10450, value_12m_minor=48230, refreshed_at=now,
                at_risk=True, at_risk_since=now,
            )
        )  # fmt: skip
        await session.commit()
    cashier = app.user(CASHIER_ID, language_code=language)
    # Before any choice the gap rule judges (the stage line says it): no extra line.
    await cashier.send(f"/member {CODE}")
    assert not any(
        line.startswith("🚪") for line in (await cashier.next_message()).text.split("\n")
    )
    async with app.session() as session:
        session.add(
            ChurnSignal(
                id=1, signal="p_alive", reason="backtest", auc_p_alive=0.8, customers=500,
                returners=100, cutoff=date(2025, 12, 1), holdout_until=date(2026, 3, 1),
                chosen_at=now, flags_signal="p_alive",
            )
        )  # fmt: skip
        await session.commit()
    await cashier.send(f"/member {CODE}")
    assert AT_RISK[language] in (await cashier.next_message()).text.splitlines()
