"""The win-back care message follows the shop's churn signal, end to end through the simulator:
the shop's backtest chose the model's P(alive), so the regular whose P(alive) fell gets the
win-back coupon in their language, and a member only the gap rule calls at risk gets nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from care.automation.engine import evaluate
from care.core.clock import FrozenClock
from care.loyalty.purchases import record_purchase
from care.messaging.delivery import DeliveryWorker
from care.messaging.ratelimit import RateLimiter
from care.value.refresh import refresh_value
from storage.enums import LifecycleStage
from storage.models import ChurnSignal, Member, MemberValue
from tests.churn_helpers import insert_history, poisson_shop
from tests.conftest import RunningBot, running_bot
from tests.simulator import BotAPISimulator
from tests.staff_helpers import make_member

FADING_ID, GAPPY_ID = 3001, 3002
MISSED = {"zh": "很想念您", "en": "we miss you"}


async def deliver(app: RunningBot) -> int:
    await app.settle()
    worker = DeliveryWorker(
        app.bot, app.services.session_factory, app.config, app.clock,
        limiter=RateLimiter(500.0, 0),
    )  # fmt: skip
    return await worker.drain_once()


async def refresh(app: RunningBot) -> None:
    """The daily value refresh, with the shop's choice of P(alive) recent (made today)."""
    async with app.session() as session:
        await session.execute(update(ChurnSignal).values(chosen_at=app.clock.now()))
        await session.commit()
    await refresh_value(app.services.session_factory, app.clock, app.config)


@pytest.mark.parametrize("locale", ["zh", "en"])
async def test_the_winback_reaches_the_member_the_models_signal_picks(
    sim: BotAPISimulator, sqlite_url: str, clock: FrozenClock, locale: str
) -> None:
    async with running_bot(sim, sqlite_url, clock, holdout_pct=0) as app:
        factory = app.services.session_factory
        await insert_history(factory, poisson_shop(150, seed=3))  # the rest of the shop
        now = clock.now()
        async with app.session() as session:
            fading = await make_member(
                session, app.config, clock, FADING_ID, "Fang", language_code=locale
            )
            gappy = await make_member(
                session, app.config, clock, GAPPY_ID, "Gao", language_code=locale
            )
            for member in (fading, gappy):
                member.locale, member.marketing_opt_in = locale, True
            # The shop's backtest chose P(alive).
            session.add(
                ChurnSignal(
                    id=1, signal="p_alive", reason="backtest", auc_p_alive=0.81,
                    auc_expected_purchases=0.78, auc_gap_rule=0.7, customers=400,
                    returners=150, cutoff=now.date(), holdout_until=now.date(),
                    chosen_at=now, flags_signal="p_alive",
                )
            )  # fmt: skip
            await session.commit()
            # Fang bought every week for ten weeks, the last time yesterday; Gao once, today.
            for week in range(10):
                await record_purchase(
                    session, app.config, clock, member_id=fading.id, amount_minor=8_800,
                    receipt_id=f"F{week}", source="import",
                    purchased_at=now - timedelta(days=64 - 7 * week),
                )  # fmt: skip
            await record_purchase(
                session, app.config, clock, member_id=gappy.id, amount_minor=8_800,
                receipt_id="G0", source="import", purchased_at=now - timedelta(hours=1),
            )  # fmt: skip
            await session.commit()
            fading_id, gappy_id = fading.id, gappy.id
        fang = app.user(FADING_ID, first_name="Fang", language_code=locale, started=True)
        gao = app.user(GAPPY_ID, first_name="Gao", language_code=locale, started=True)

        await refresh(app)
        async with app.session() as session:
            first = await session.get(MemberValue, fading_id)
            assert first is not None and first.p_alive > 0.5 and not first.at_risk

        # Sixty quiet days later Fang's P(alive) has fallen; the gap rule happens to call Gao
        # at risk today (as a stage refresh would stamp it).
        clock.advance(days=60)
        await refresh(app)
        async with app.session() as session:
            fell = await session.get(MemberValue, fading_id)
            assert fell is not None and fell.p_alive < 0.5 and fell.at_risk
            assert fell.at_risk_since == clock.now()
            await session.execute(
                update(Member)
                .where(Member.id == gappy_id)
                .values(lifecycle_stage=LifecycleStage.AT_RISK, stage_changed_at=clock.now())
            )
            await session.commit()

        outcomes = await evaluate(factory, app.config, clock, only="winback")
        assert [(o.rule, o.sent) for o in outcomes] == [("winback", 1)]
        assert await deliver(app) == 1
        message = await fang.next_message()
        assert MISSED[locale] in message.text.lower()
        await gao.no_message_within(0.3)
        # The occasion is decided once: the next pass sends nothing more.
        clock.advance(hours=1)
        outcomes = await evaluate(factory, app.config, clock, only="winback")
        assert sum(o.sent for o in outcomes) == 0
