"""Each shop's churn signal is chosen from its own history: the value refresh backtests P(alive),
expected purchases and the gap rule (fitted up to 90 days ago, scored on who bought since) and
keeps the one that ranks leavers best, or the documented default when the history is too thin;
the churn-risk audience and the win-back rule then follow it, and a first flag is no news."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.automation.engine import evaluate_rule, plan
from care.automation.rules import get_rule
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.segments.audience import Audience, count_audience
from care.segments.refresh import refresh_segments
from care.value.refresh import PriorFlags, Scores, flag_at_risk, refresh_value
from care.value.signal import (
    DEFAULT_SIGNAL,
    GAP_RULE,
    MIN_CUSTOMERS,
    REASON_BACKTEST,
    REASON_THIN,
    current_signal,
    pick,
)
from storage.db import create_engine, create_session_factory
from storage.enums import LifecycleStage
from storage.models import ChurnSignal, Member, MemberValue
from tests.churn_helpers import clockwork_shop, insert_history, poisson_shop

CONFIG = CareConfig(holdout_pct=0)
Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def factory(sqlite_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(sqlite_url)
    yield create_session_factory(engine)
    await engine.dispose()


def test_the_best_auc_wins_unless_the_history_is_too_thin_to_judge() -> None:
    aucs = {"expected_purchases": 0.71, "p_alive": 0.64, "gap_rule": 0.78}
    assert pick(aucs, 500, 120) == (GAP_RULE, REASON_BACKTEST)
    assert pick(aucs, MIN_CUSTOMERS - 1, 120) == (DEFAULT_SIGNAL, REASON_THIN)
    assert pick(aucs, 500, 10) == (DEFAULT_SIGNAL, REASON_THIN)  # too few came back
    assert pick(aucs, 500, 495) == (DEFAULT_SIGNAL, REASON_THIN)  # too few left
    # A tie keeps the default.
    assert pick({**aucs, "expected_purchases": 0.78}, 500, 120)[0] == DEFAULT_SIGNAL
    assert pick(dict.fromkeys(aucs), 500, 120) == (DEFAULT_SIGNAL, REASON_THIN)


@pytest.mark.parametrize(
    ("shop", "winner", "loser"),
    [
        (poisson_shop, "expected_purchases", "gap_rule"),
        (clockwork_shop, "gap_rule", "expected_purchases"),
    ],
)
async def test_the_refresh_chooses_the_signal_that_ranks_this_shops_leavers_best(
    factory: Factory, clock: FrozenClock, shop, winner: str, loser: str
) -> None:  # type: ignore[no-untyped-def]
    await insert_history(factory, shop(600, seed=0))
    async with factory() as session:
        assert await current_signal(session) == GAP_RULE  # no choice yet: the gap rule
    stats = await refresh_value(factory, clock, CONFIG)
    choice = stats.signal_choice
    assert choice is not None and (choice.signal, choice.reason) == (winner, REASON_BACKTEST)
    assert choice.customers == 600 and 20 <= choice.returners <= 580
    assert choice.cutoff.isoformat() == "2025-12-01" and choice.holdout_until.isoformat() == (
        "2026-03-01"
    )
    winner_auc, loser_auc = choice.aucs[winner], choice.aucs[loser]
    assert winner_auc is not None and loser_auc is not None
    assert winner_auc > loser_auc + 0.02
    assert winner_auc == max(value for value in choice.aucs.values() if value is not None)
    async with factory() as session:
        row = await session.get(ChurnSignal, 1)
        assert row is not None
        assert (row.signal, row.reason, row.chosen_at) == (winner, REASON_BACKTEST, clock.now())
        assert getattr(row, f"auc_{winner}") == pytest.approx(winner_auc)
        assert await current_signal(session) == winner
        # The first flags are where members stand: nobody is stamped, so no win-back fires.
        flagged = await session.scalar(
            select(MemberValue.member_id).where(MemberValue.at_risk_since.is_not(None))
        )
        assert flagged is None
    # The choice stands for a week; the daily refresh does not redo it.
    clock.advance(days=1)
    assert (await refresh_value(factory, clock, CONFIG)).signal_choice is None
    clock.advance(days=7)
    assert (await refresh_value(factory, clock, CONFIG)).signal_choice is not None


async def test_too_thin_a_history_keeps_the_default_and_says_so(
    factory: Factory, clock: FrozenClock
) -> None:
    await insert_history(factory, poisson_shop(80, seed=1))
    stats = await refresh_value(factory, clock, CONFIG)
    choice = stats.signal_choice
    assert stats.fitted and choice is not None
    assert (choice.signal, choice.reason) == (DEFAULT_SIGNAL, REASON_THIN)
    assert choice.customers == 80
    async with factory() as session:
        assert await current_signal(session) == DEFAULT_SIGNAL


def test_only_a_real_change_is_stamped() -> None:
    now = datetime(2026, 3, 2, tzinfo=UTC)
    before = now - timedelta(days=3)
    ids = np.array([1, 2, 3, 4, 5], dtype=np.int64)
    # 1: still at risk; 2: newly at risk; 3: first scored and at risk; 4: recovered; 5: calm.
    scores = Scores(
        member_id=ids,
        p_alive=np.full(5, 0.5),
        purchases_30d=np.zeros(5),
        purchases_90d=np.array([0.1, 0.2, 0.3, 2.0, 3.0]),
        spend_per_purchase=np.zeros(5, dtype=np.int64),
        value_12m=np.zeros(5, dtype=np.int64),
    )
    prior = PriorFlags(
        member_id=np.array([1, 2, 4, 5], dtype=np.int64),
        at_risk=np.array([True, False, True, False]),
        since={1: before, 4: before},
    )
    flagged = flag_at_risk(scores, prior, "expected_purchases", news=True, now=now)
    assert flagged.at_risk is not None and flagged.at_risk_since is not None
    assert flagged.at_risk.tolist() == [True, True, True, False, False]
    assert flagged.at_risk_since.tolist() == [before, now, None, None, None]
    # A signal just chosen is no news: nobody newly flagged by it is stamped.
    quiet = flag_at_risk(scores, prior, "expected_purchases", news=False, now=now)
    assert quiet.at_risk_since is not None
    assert quiet.at_risk_since.tolist() == [before, None, None, None, None]


async def test_the_churn_risk_audience_follows_the_chosen_signal(
    factory: Factory, clock: FrozenClock
) -> None:
    await insert_history(factory, poisson_shop(300, seed=2))
    async with factory() as session:
        # Give everyone a chat, so the audience can reach them.
        await session.execute(update(Member).values(chat_id=Member.id, registered_at=clock.now()))
        await session.commit()
    await refresh_segments(factory, CONFIG, clock)
    stats = await refresh_value(factory, clock, CONFIG)
    assert stats.signal_choice is not None
    assert stats.signal_choice.signal == "expected_purchases"
    audience = Audience.from_spec({"kind": "segment", "value": "churn_risk"})
    async with factory() as session:
        by_model = await count_audience(session, audience, marketing=False)
        flagged = await session.scalar(
            select(func.count()).select_from(MemberValue).where(MemberValue.at_risk.is_(True))
        )
        drifting = await session.scalar(
            select(func.count())
            .select_from(Member)
            .where(Member.lifecycle_stage.in_([LifecycleStage.AT_RISK, LifecycleStage.LAPSED]))
        )
        await session.execute(update(ChurnSignal).values(signal=GAP_RULE))
        by_gap = await count_audience(session, audience, marketing=False)
        await session.execute(delete(ChurnSignal))
        before_any_choice = await count_audience(session, audience, marketing=False)
        await session.rollback()
    assert by_model == stats.at_risk == flagged and 0 < by_model < 300
    assert by_gap == before_any_choice == drifting and by_gap != by_model


async def test_an_imported_history_sends_no_winback_burst_but_later_changes_count(
    factory: Factory, clock: FrozenClock
) -> None:
    await insert_history(factory, poisson_shop(300, seed=4))
    async with factory() as session:
        await session.execute(
            update(Member).values(
                chat_id=Member.id, registered_at=clock.now(), marketing_opt_in=True
            )
        )
        await session.commit()
    await refresh_segments(factory, CONFIG, clock)
    stats = await refresh_value(factory, clock, CONFIG)
    assert stats.signal_choice is not None and stats.signal_choice.signal != GAP_RULE
    assert stats.at_risk > 50 and stats.became_at_risk == 0
    assert await winback_decisions(factory, clock) == 0

    clock.advance(days=30)
    await refresh_segments(factory, CONFIG, clock)
    stamped = clock.now()
    later = await refresh_value(factory, clock, CONFIG)
    assert later.became_at_risk > 0
    # A rules pass that ran while the refresh was still writing (its window already past the
    # stamp) does not lose them: the next pass still finds every member who became at risk.
    clock.advance(minutes=1)
    async with factory() as session:
        outcome = await evaluate_rule(
            session, CONFIG, clock, get_rule("winback"),
            since=stamped + timedelta(seconds=30), commit=False,
        )  # fmt: skip
        await session.rollback()
    assert outcome.decided == later.became_at_risk
    assert await winback_decisions(factory, clock) == later.became_at_risk


async def winback_decisions(factory: Factory, clock: FrozenClock) -> int:
    outcomes = await plan(factory, CONFIG, clock, only="winback")
    return sum(o.decided for o in outcomes)


async def test_a_large_shop_is_judged_on_a_fixed_sample_of_its_customers(
    factory: Factory, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("care.value.choosing.SAMPLE_CUSTOMERS", 300)
    await insert_history(factory, poisson_shop(600, seed=0))
    stats = await refresh_value(factory, clock, CONFIG)
    choice = stats.signal_choice
    assert choice is not None and choice.customers == 300  # every other member
    assert (choice.signal, choice.reason) == ("expected_purchases", REASON_BACKTEST)
