"""`carebot care backtest` on the CDNOW sample: fitted on the first 39 weeks it finds the
paper's parameters, compares its predictions with weeks 40–78, and ranks the churn signals."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from care.console.backtest import BacktestError, auc, run_backtest
from care.core.config import CareConfig
from care.value.model import expected_purchases
from storage.db import create_engine, create_session_factory
from storage.enums import MemberStatus
from storage.models import Member, Purchase
from tests.test_value_model import PAPER_BGNBD
from tests.value_helpers import CALIBRATION_END, cdnow_calibration, cdnow_purchase_days

CONFIG = CareConfig()
HOLDOUT_END = date(1998, 6, 30)
Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def cdnow_shop(sqlite_url: str) -> AsyncIterator[Factory]:
    """The CDNOW customers as members, every CDNOW line as a receipt at noon shop time."""
    zone = ZoneInfo(CONFIG.default_timezone)
    engine = create_engine(sqlite_url)
    created = datetime(1996, 12, 1, tzinfo=UTC)
    members, purchases = [], []
    lines = Path(__file__).parent.joinpath("data", "cdnow_sample.txt").read_text().splitlines()
    ids: dict[str, int] = {}
    for number, line in enumerate(lines):
        customer, _sample, day, _cds, dollars = line.split()
        if customer not in ids:
            ids[customer] = len(ids) + 1
            members.append(
                {
                    "id": ids[customer], "member_code": f"C{customer}",
                    "status": MemberStatus.ACTIVE, "created_at": created,
                }
            )  # fmt: skip
        when = datetime.combine(
            date(int(day[:4]), int(day[4:6]), int(day[6:])), time(12), zone
        ).astimezone(UTC)
        purchases.append(
            {
                "member_id": ids[customer], "receipt_id": f"CD{number}",
                "amount_minor": max(round(float(dollars) * 100), 1), "currency": "CNY",
                "purchased_at": when, "created_at": when,
            }
        )  # fmt: skip
    async with engine.begin() as connection:
        await connection.execute(insert(Member), members)
        await connection.execute(insert(Purchase), purchases)
    yield create_session_factory(engine)
    await engine.dispose()


def test_auc_counts_ties_half_and_needs_both_classes() -> None:
    positive = np.array([True, True, False, False])
    assert auc(np.array([0.9, 0.8, 0.1, 0.2]), positive) == 1.0
    assert auc(np.array([0.1, 0.2, 0.9, 0.8]), positive) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), positive) == 0.5
    assert auc(np.array([0.5, 0.5]), np.array([True, True])) is None


async def test_backtest_on_cdnow_finds_the_papers_model_and_ranks_the_signals(
    cdnow_shop: Factory,
) -> None:
    report = await run_backtest(
        cdnow_shop, CONFIG, until=CALIBRATION_END, holdout_until=HOLDOUT_END
    )
    assert report.customers == 2357
    # Fitted in days; the paper's alpha is in weeks.
    assert report.params.r == pytest.approx(PAPER_BGNBD.r, rel=0.01)
    assert report.params.alpha / 7 == pytest.approx(PAPER_BGNBD.alpha, rel=0.01)
    assert report.params.a == pytest.approx(PAPER_BGNBD.a, rel=0.01)
    assert report.params.b == pytest.approx(PAPER_BGNBD.b, rel=0.01)

    # The actual holdout repeat purchase days, counted straight from the file.
    days = cdnow_purchase_days()
    actual = sum(1 for spend in days.values() for day in spend if day > CALIBRATION_END)
    assert report.actual_repeat_purchases == actual
    # The prediction is the paper's model's: its conditional expectation for weeks 40–78 …
    calibration = cdnow_calibration()
    papers = expected_purchases(PAPER_BGNBD, 39, calibration.x, calibration.t_x, calibration.T)
    assert report.predicted_repeat_purchases == pytest.approx(float(papers.sum()), rel=0.01)
    # … which falls somewhat short of what CDNOW's customers actually did (1,654 vs 1,882).
    assert report.predicted_repeat_purchases == pytest.approx(actual, rel=0.15)
    # … and by past frequency (0 … 7+ repeat purchase days in weeks 1–39).
    assert [g.repeat_purchases for g in report.groups] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(g.customers for g in report.groups) == 2357
    assert report.groups[0].customers == 2357 - 946
    for group in report.groups:
        assert group.predicted == pytest.approx(group.actual, abs=max(0.6, 0.35 * group.actual))
    # On CDNOW the model's expected purchases rank who did not come back best (AUC ≈ 0.77),
    # the gap rule next (≈ 0.72); P(alive) alone is worse than chance (≈ 0.32), because the
    # model gives every one-time buyer P(alive) = 1 — exactly what an owner runs this to learn.
    aucs = report.aucs
    assert set(aucs) == {"p_alive", "expected_purchases", "gap_rule"}
    assert aucs["expected_purchases"] == pytest.approx(0.77, abs=0.02)
    assert aucs["gap_rule"] == pytest.approx(0.72, abs=0.02)
    assert aucs["p_alive"] == pytest.approx(0.32, abs=0.02)
    assert report.best_signal == "expected_purchases"


async def test_backtest_refuses_dates_that_leave_nothing_to_check(cdnow_shop: Factory) -> None:
    with pytest.raises(BacktestError, match="after --until"):
        await run_backtest(cdnow_shop, CONFIG, until=HOLDOUT_END, holdout_until=CALIBRATION_END)
    with pytest.raises(BacktestError, match="fewer than two customers"):
        await run_backtest(
            cdnow_shop, CONFIG, until=date(1990, 1, 1), holdout_until=date(1990, 6, 1)
        )


async def test_the_cli_prints_one_json_object_and_a_readable_report(
    cdnow_shop: Factory,
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.chdir(Path(os.environ.get("TMPDIR", "/tmp")))
    argv = ["care", "backtest", "--until", "1997-09-30", "--holdout-until", "1998-06-30"]
    assert await asyncio.to_thread(main, [*argv, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["customers"] == 2357
    assert set(body["params"]) == {"r", "alpha", "a", "b"}
    assert body["actual_repeat_purchases"] > 0 and body["predicted_repeat_purchases"] > 0
    assert {"auc_p_alive", "auc_expected_purchases", "auc_gap_rule"} <= set(body)
    assert len(body["by_frequency"]) == 8

    assert await asyncio.to_thread(main, argv) == 0
    text = capsys.readouterr().out
    assert "customers: 2,357" in text and "gap_rule" in text and "best signal" in text

    bad = await asyncio.to_thread(main, ["care", "backtest", "--until", "1998-06-30",
                                         "--holdout-until", "1997-01-01"])  # fmt: skip
    assert bad == 2
    assert "after --until" in capsys.readouterr().err
