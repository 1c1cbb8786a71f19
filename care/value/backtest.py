"""The backtest an owner runs before trusting a churn signal: ``carebot care backtest``.

Fits the customer-value model (``care.value.model``) on the shop's purchases up to a date —
the members as they were then — and compares with what happened in the holdout period after
it: predicted against actual repeat purchases in total and by how often people had bought
before (0, 1, … 7+ repeat purchases, the comparison in Fader, Hardie & Lee 2005), and, for each
churn signal the product offers, how well it ranks who did not come back (the AUC: 0.5 is a
coin toss, 1.0 ranks every leaver above every stayer):

* ``p_alive`` — the model's probability the member is still a customer (low = leaving);
* ``expected_purchases`` — the model's expected purchases in the holdout period;
* ``gap_rule`` — the segments' churn risk: the gap since the last purchase against the
  member's usual gap (``care.core.gap_rule.churn_risk``), as the product computes it.

Purchases are counted per shop-local day, as in the paper: two receipts on one day are one
purchase day. The same machinery chooses the shop's churn signal every week on its own history
(``care.value.signal``); the console renders the report (``care.console.backtest``).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.config import CareConfig
from care.core.gap_rule import MIN_MEMBERS_FOR_SHOP_GAP, churn_risk, usual_gap_days
from care.core.sqltime import EpochDays
from care.value.model import BGNBDParams, expected_purchases, fit_bgnbd, probability_alive
from storage.models import Member, Purchase

FREQUENCY_GROUPS = 8  # 0, 1, … 6, and 7 or more repeat purchase days
READ_CHUNK = 100_000
SAMPLE_IN_CHUNK = 500


class BacktestError(ValueError):
    """The dates or the data do not allow a backtest (the message says why)."""


@dataclass(frozen=True, slots=True)
class FrequencyGroup:
    repeat_purchases: str  # "0" … "6", "7+"
    customers: int
    predicted: float  # mean repeat purchase days per customer in the holdout
    actual: float


@dataclass(frozen=True, slots=True)
class Backtest:
    until: date
    holdout_until: date
    customers: int
    params: BGNBDParams
    predicted_repeat_purchases: float
    actual_repeat_purchases: int
    groups: list[FrequencyGroup]
    aucs: dict[str, float | None]  # signal → AUC for "did not come back"
    returners: int = 0  # customers who bought again in the holdout

    @property
    def best_signal(self) -> str | None:
        ranked = [(auc, name) for name, auc in self.aucs.items() if auc is not None]
        return max(ranked)[1] if ranked else None

    def to_json(self) -> dict[str, object]:
        """One flat JSON object: ``auc_<signal>`` per signal, ``params`` as r, alpha, a, b."""
        body: dict[str, object] = {
            "until": self.until.isoformat(),
            "holdout_until": self.holdout_until.isoformat(),
            "customers": self.customers,
            "returners": self.returners,
            "params": asdict(self.params),
            "predicted_repeat_purchases": round(self.predicted_repeat_purchases, 2),
            "actual_repeat_purchases": self.actual_repeat_purchases,
            "by_frequency": [asdict(group) for group in self.groups],
            "best_signal": self.best_signal,
        }
        body.update({f"auc_{name}": auc for name, auc in self.aucs.items()})
        return body


def auc(score: NDArray[np.float64], positive: NDArray[np.bool_]) -> float | None:
    """The probability that a random positive scores above a random negative (ties count half).

    None when either class is empty. The Mann-Whitney form, with average ranks for ties.
    """
    positives = int(positive.sum())
    negatives = int(positive.size - positives)
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(score)
    return float(
        (ranks[positive].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    )


async def run_backtest(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    *,
    until: date,
    holdout_until: date,
) -> Backtest:
    """Fit on the purchase days up to and including ``until``; score the days after it up to
    and including ``holdout_until``."""
    if holdout_until <= until:
        raise BacktestError("the holdout must end after --until")
    zone = ZoneInfo(config.default_timezone)
    members, days = await purchase_days(session_factory, zone, until, holdout_until)
    return backtest_days(members, days, config, until=until, holdout_until=holdout_until)


def backtest_days(
    members: NDArray[np.int64],
    days: NDArray[np.int64],
    config: CareConfig,
    *,
    until: date,
    holdout_until: date,
) -> Backtest:
    """The backtest on distinct (member, day ordinal) pairs sorted by member then day, as
    ``purchase_days`` reads them. Pure numpy: the value refresh runs it in a worker thread."""
    until_day = until.toordinal()
    calibration = days <= until_day
    customers, first_index = np.unique(members[calibration], return_index=True)
    if customers.size < 2:
        raise BacktestError(f"fewer than two customers had bought by {until.isoformat()}")
    # Rows are sorted by (member, day): per customer, the first and last calibration day and
    # the count, and the holdout days after it.
    cal_members, cal_days = members[calibration], days[calibration]
    counts = np.bincount(np.searchsorted(customers, cal_members), minlength=customers.size)
    last_index = first_index + counts - 1
    first = cal_days[first_index].astype(np.float64)
    last = cal_days[last_index].astype(np.float64)
    x = counts.astype(np.float64) - 1
    t_x = last - first
    T = until_day - first
    later = ~calibration & np.isin(members, customers)
    actual = np.bincount(
        np.searchsorted(customers, members[later]), minlength=customers.size
    ).astype(np.float64)
    horizon = float(holdout_until.toordinal() - until_day)

    params = fit_bgnbd(x, t_x, T)
    predicted = expected_purchases(params, horizon, x, t_x, T)
    alive = probability_alive(params, x, t_x, T)
    gap_risk = _gap_rule(config, x, t_x, T)
    gone = actual == 0
    group = np.minimum(x, FREQUENCY_GROUPS - 1).astype(int)
    groups = [
        FrequencyGroup(
            repeat_purchases=str(k) if k < FREQUENCY_GROUPS - 1 else f"{k}+",
            customers=int((group == k).sum()),
            predicted=round(float(predicted[group == k].mean()), 3) if (group == k).any() else 0.0,
            actual=round(float(actual[group == k].mean()), 3) if (group == k).any() else 0.0,
        )
        for k in range(FREQUENCY_GROUPS)
    ]
    return Backtest(
        until=until,
        holdout_until=holdout_until,
        customers=int(customers.size),
        params=params,
        predicted_repeat_purchases=float(predicted.sum()),
        actual_repeat_purchases=int(actual.sum()),
        groups=groups,
        aucs={
            "p_alive": auc(1.0 - alive, gone),
            "expected_purchases": auc(-predicted, gone),
            "gap_rule": auc(gap_risk, gone),
        },
        returners=int((~gone).sum()),
    )


def _gap_rule(
    config: CareConfig, x: NDArray[np.float64], t_x: NDArray[np.float64], T: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The segments' churn risk on the backtest date, member by member, as the product has it."""
    purchases = (x + 1).astype(int)
    own_gaps = np.where(x > 0, t_x / np.maximum(x, 1), np.nan)
    with_rhythm = own_gaps[(purchases >= config.min_purchases_for_own_gap) & (x > 0)]
    shop_gap = (
        float(statistics.median_low(sorted(with_rhythm.tolist())))
        if with_rhythm.size >= MIN_MEMBERS_FOR_SHOP_GAP
        else config.fallback_gap_days
    )
    since_last = T - t_x
    return np.array(
        [
            churn_risk(
                float(gap),
                usual_gap_days(
                    int(count), None if np.isnan(own) else float(own), config, shop_gap
                ),
                config,
            )
            for gap, count, own in zip(since_last, purchases, own_gaps, strict=True)
        ]
    )


async def purchase_days(
    session_factory: async_sessionmaker[AsyncSession],
    zone: ZoneInfo,
    until: date,
    holdout_until: date,
    *,
    member_ids: NDArray[np.int64] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Distinct (member, shop-local day) pairs up to ``holdout_until``, sorted.

    Local days use the zone's offset at ``until`` (a shop on daylight saving time may see a
    purchase within an hour of midnight counted on the neighbouring day). With ``member_ids``
    (live members: a sample of a large shop) only their purchases are read, through the
    purchases' (member, time) index.
    """
    end = datetime.combine(holdout_until + timedelta(days=1), datetime.min.time(), zone)
    offset = datetime.combine(until, datetime.min.time(), zone).utcoffset() or timedelta()
    shift = offset.total_seconds() / 86_400 + date(1970, 1, 1).toordinal()
    query = (
        select(Purchase.member_id, EpochDays(Purchase.purchased_at))
        .join(Member, Member.id == Purchase.member_id)
        .where(Purchase.purchased_at < end, Member.deleted_at.is_(None))
    )
    chunks = []
    async with session_factory() as session:
        if member_ids is None:
            result = await session.stream(query.execution_options(yield_per=READ_CHUNK))
            async for partition in result.partitions(READ_CHUNK):
                chunks.append(np.array(partition, dtype=np.float64).reshape(-1, 2))
        else:
            days = EpochDays(Purchase.purchased_at)
            for start in range(0, member_ids.size, SAMPLE_IN_CHUNK):
                part = member_ids[start : start + SAMPLE_IN_CHUNK].tolist()
                sampled = await session.execute(
                    select(Purchase.member_id, days).where(
                        Purchase.member_id.in_(part), Purchase.purchased_at < end
                    )
                )
                chunks.append(np.array(sampled.all(), dtype=np.float64).reshape(-1, 2))
    rows = np.concatenate(chunks) if chunks else np.empty((0, 2))
    if rows.size == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pairs = np.unique(
        np.stack([rows[:, 0].astype(np.int64), np.floor(rows[:, 1] + shift).astype(np.int64)], 1),
        axis=0,
    )
    return pairs[:, 0], pairs[:, 1]
