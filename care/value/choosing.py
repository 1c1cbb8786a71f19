"""Making the churn-signal choice: the backtest of every signal on the shop's own history.

Apart from ``care.value.signal`` (the choice kept and read) so that the bot process imports numpy,
scipy and the model only when the value refresh runs, not at start-up.
"""

from __future__ import annotations

import asyncio
import math
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.config import CareConfig
from care.value.backtest import BacktestError, backtest_days, purchase_days
from care.value.signal import (
    EXPECTED_90D_AT_RISK,
    HOLDOUT_DAYS,
    MIN_CUSTOMERS,
    P_ALIVE,
    P_ALIVE_AT_RISK,
    SAMPLE_CUSTOMERS,
    SIGNALS,
    SignalChoice,
    pick,
)


async def choose_signal(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    now: datetime,
    member_ids: NDArray[np.int64],
) -> SignalChoice:
    """Backtest every signal on the shop's history up to ``HOLDOUT_DAYS`` ago and pick one.

    ``member_ids`` are the live members with purchases (sorted); a shop with more than
    ``SAMPLE_CUSTOMERS`` of them is judged on every k-th, the same ones every week.
    """
    zone = ZoneInfo(config.default_timezone)
    holdout_until = now.astimezone(zone).date() - timedelta(days=1)
    cutoff = holdout_until - timedelta(days=HOLDOUT_DAYS)
    stride = max(1, math.ceil(member_ids.size / SAMPLE_CUSTOMERS))
    members, days = await purchase_days(
        session_factory,
        zone,
        cutoff,
        holdout_until,
        member_ids=member_ids[::stride] if stride > 1 else None,
    )
    aucs: dict[str, float | None] = dict.fromkeys(SIGNALS)
    judged, returners = _customers_by(members, days, cutoff), 0
    if judged >= MIN_CUSTOMERS:
        try:
            report = await asyncio.to_thread(
                backtest_days, members, days, config, until=cutoff, holdout_until=holdout_until
            )
        except BacktestError:
            pass
        else:
            aucs.update({name: _rounded(report.aucs.get(name)) for name in SIGNALS})
            judged, returners = report.customers, report.returners
    signal, reason = pick(aucs, judged, returners)
    return SignalChoice(signal, reason, aucs, judged, returners, cutoff, holdout_until, now)


def _customers_by(members: NDArray[np.int64], days: NDArray[np.int64], cutoff: date) -> int:
    return int(np.unique(members[days <= cutoff.toordinal()]).size)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def at_risk_mask(
    signal: str, p_alive: NDArray[np.float64], purchases_90d: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Who is at risk by a model signal (rounded as ``member_value`` stores the numbers)."""
    if signal == P_ALIVE:
        return np.asarray(np.round(p_alive, 4) < P_ALIVE_AT_RISK)
    return np.asarray(np.round(purchases_90d, 4) < EXPECTED_90D_AT_RISK)
