"""/stats tells the owner which signal says who is likely to leave and why, in zh and en: the
one chosen from the shop's own backtest with its score out of 100, the default while the history
is too thin, the gap rule before the model has worked at all."""

from __future__ import annotations

from datetime import date

from care.staff.roles import add_staff
from storage.enums import StaffRole
from storage.models import ChurnSignal
from tests.conftest import RunningBot

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
