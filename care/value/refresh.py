"""The value refresh: read every member with purchases, fit BG/NBD and Gamma-Gamma on them,
and store each member's P(alive), expected purchases (30 and 90 days), expected spend per
purchase and predicted 12-month value in ``member_value``.

Reads one row per member from the aggregates already on ``members`` (never the purchase
history): ``x`` = purchases − 1, ``t_x`` = days from the first to the last purchase,
``T`` = days since the first purchase, and the mean spend per purchase. Two approximations
follow from that, both stated where the numbers are shown: purchases are counted per receipt
(not per purchase day, as in the paper), and the Gamma-Gamma mean includes the first purchase.

The same refresh keeps the shop's churn signal (``care.value.signal``): once a week it
backtests every signal on the shop's own history and stores the best, and it flags each member
at risk by the chosen model signal (``at_risk``) with the moment they became so
(``at_risk_since``, the win-back rule's trigger). A member's first flag (no earlier score, or a
signal just chosen) is where they stand, not news: it is not stamped, so an imported history or
a change of signal sends no burst of win-back offers.

The numpy work runs in a worker thread so the bot's event loop keeps answering meanwhile; the
write replaces the table in id ranges, one short transaction each.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.sqltime import SECONDS_PER_DAY, EpochDays
from care.value.choosing import at_risk_mask, choose_signal
from care.value.model import (
    Array,
    BGNBDParams,
    GammaGammaParams,
    expected_purchases,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    probability_alive,
)
from care.value.signal import (
    CHOOSE_EVERY,
    DEFAULT_SIGNAL,
    SignalChoice,
    current_choice,
    model_signal,
    store_choice,
)
from storage.models import Member, MemberValue

IntArray = NDArray[np.int64]

# Below these the fitted parameters are noise: the refresh leaves the table as it was.
MIN_CUSTOMERS_TO_FIT = 50
MIN_REPEAT_CUSTOMERS_TO_FIT = 20
MONTH_DAYS = 30.0
QUARTER_DAYS = 90.0
YEAR_DAYS = 365.0
READ_CHUNK = 100_000
# The parameters are fitted on at most this many customers (``fit_sample``).
FIT_SAMPLE = 100_000
FIT_SEED = 20050101
WRITE_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class Histories:
    """One entry per member with purchases, in days."""

    member_id: IntArray
    x: Array
    t_x: Array
    T: Array
    mean_spend: Array


@dataclass(frozen=True, slots=True)
class Scores:
    member_id: IntArray
    p_alive: Array
    purchases_30d: Array
    purchases_90d: Array
    spend_per_purchase: IntArray
    value_12m: IntArray
    # At risk by the shop's model signal, and since when (None: not at risk, or not news).
    at_risk: NDArray[np.bool_] | None = None
    at_risk_since: NDArray[np.object_] | None = None


@dataclass(frozen=True, slots=True)
class ValueStats:
    """What one value refresh fitted and wrote."""

    customers: int
    fitted: bool
    bgnbd: BGNBDParams | None
    gamma_gamma: GammaGammaParams | None
    expected_purchases_30d: float
    predicted_value_12m_minor: int
    seconds: float
    # The churn signal chosen in this refresh (None: the last choice is recent enough).
    signal_choice: SignalChoice | None = None
    at_risk: int = 0
    became_at_risk: int = 0


def histories(
    member_id: IntArray,
    purchase_count: Array,
    first_day: Array,
    last_day: Array,
    total: Array,
    now_day: float,
) -> Histories:
    """BG/NBD inputs from the per-member aggregates (days since the epoch for the times)."""
    count = np.maximum(purchase_count, 1.0)
    T = np.maximum(now_day - first_day, 0.0)
    t_x = np.clip(last_day - first_day, 0.0, T)
    return Histories(
        member_id=member_id,
        x=count - 1.0,
        t_x=t_x,
        T=T,
        mean_spend=total / count,
    )


def fit_sample(size: int, limit: int | None = None) -> slice | IntArray:
    """Which customers the parameters are fitted on: all of them up to ``FIT_SAMPLE``, else a
    fixed-seed random sample of that many (the same shop gets the same sample every time).

    Four (or three) population parameters from 100,000 customers carry sampling errors far
    below what the model's own assumptions cost, and the fit is what grows with the shop: the
    scoring after it is closed-form and covers every member.
    """
    limit = FIT_SAMPLE if limit is None else limit
    if size <= limit:
        return slice(None)
    return np.sort(np.random.default_rng(FIT_SEED).choice(size, limit, replace=False))


def compressed_histories(x: Array, t_x: Array, T: Array) -> tuple[Array, Array, Array, Array]:
    """(x, t_x, T, weights): customers with the same history in whole days fitted as one row
    with their count as its weight (the likelihood is a sum over customers); the paper reads
    the same histories in whole weeks."""
    rows = np.stack([x, np.rint(t_x), np.rint(T)])
    unique, counts = np.unique(rows, axis=1, return_counts=True)
    return unique[0], unique[1], unique[2], counts.astype(np.float64)


def fit_and_score(h: Histories) -> tuple[BGNBDParams, GammaGammaParams | None, Scores]:
    """Fit both models on these histories and score every one of them.

    Without enough repeat customers for Gamma-Gamma (or with a fit whose population mean is
    infinite, q ≤ 1) a member's expected spend is their own mean spend.
    """
    sample = fit_sample(h.x.size)
    bgnbd = fit_bgnbd(*compressed_histories(h.x[sample], h.t_x[sample], h.T[sample]))
    gg: GammaGammaParams | None = None
    x_fit, spend_fit = h.x[sample], h.mean_spend[sample]
    if int(np.count_nonzero((x_fit > 0) & (spend_fit > 0))) >= MIN_REPEAT_CUSTOMERS_TO_FIT:
        gg = fit_gamma_gamma(x_fit, spend_fit)
        if gg.q <= 1:
            gg = None
    spend = h.mean_spend if gg is None else expected_spend(gg, h.x, h.mean_spend)
    year = expected_purchases(bgnbd, YEAR_DAYS, h.x, h.t_x, h.T)
    scores = Scores(
        member_id=h.member_id,
        p_alive=probability_alive(bgnbd, h.x, h.t_x, h.T),
        purchases_30d=expected_purchases(bgnbd, MONTH_DAYS, h.x, h.t_x, h.T),
        purchases_90d=expected_purchases(bgnbd, QUARTER_DAYS, h.x, h.t_x, h.T),
        spend_per_purchase=np.rint(spend).astype(np.int64),
        value_12m=np.rint(year * spend).astype(np.int64),
    )
    return bgnbd, gg, scores


async def refresh_value(
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock,
    config: CareConfig | None = None,
) -> ValueStats:
    """Refit the value model on every live member with purchases and rewrite ``member_value``;
    choose the churn signal again when the last choice is ``CHOOSE_EVERY`` old."""
    config = config or CareConfig()
    started = time.perf_counter()
    now = clock.now()
    async with session_factory() as session:
        engine = session.bind
        stored = await current_choice(session)
        previous_flags = (stored.flags_signal if stored else None) or DEFAULT_SIGNAL
        due = stored is None or now - stored.chosen_at >= CHOOSE_EVERY - timedelta(seconds=5)
        signal = stored.signal if stored is not None else DEFAULT_SIGNAL
    if not isinstance(engine, AsyncEngine):
        raise TypeError("refresh_value needs a session factory bound to an AsyncEngine")
    async with engine.connect() as connection:
        h = await _read_histories(connection, now)
        await connection.rollback()
        if h.x.size < MIN_CUSTOMERS_TO_FIT:
            return ValueStats(h.x.size, False, None, None, 0.0, 0, _since(started))
        choice = None
        if due:
            choice = await choose_signal(session_factory, config, now, h.member_id)
            signal = choice.signal
        bgnbd, gg, scores = await asyncio.to_thread(fit_and_score, h)
        flags = model_signal(signal)
        prior = await _read_flags(connection)
        await connection.rollback()
        scores = flag_at_risk(scores, prior, flags, news=flags == previous_flags, now=now)
        await _write(connection, scores, now)
    if choice is not None:
        async with session_factory() as session:
            await store_choice(session, choice, flags)
            await session.commit()
    elif flags != previous_flags or stored is None:
        async with session_factory() as session:
            row = await current_choice(session)
            if row is not None:
                row.flags_signal = flags
                await session.commit()
    assert scores.at_risk is not None and scores.at_risk_since is not None
    return ValueStats(
        customers=int(h.x.size),
        fitted=True,
        bgnbd=bgnbd,
        gamma_gamma=gg,
        expected_purchases_30d=round(float(scores.purchases_30d.sum()), 1),
        predicted_value_12m_minor=int(scores.value_12m.sum()),
        seconds=_since(started),
        signal_choice=choice,
        at_risk=int(scores.at_risk.sum()),
        became_at_risk=sum(1 for since in scores.at_risk_since if since == now),
    )


@dataclass(frozen=True, slots=True)
class PriorFlags:
    """What ``member_value`` said before this refresh: every scored member (sorted), and the
    at-risk ones with the moment they became so."""

    member_id: IntArray
    at_risk: NDArray[np.bool_]
    since: dict[int, datetime]


def flag_at_risk(
    scores: Scores, prior: PriorFlags, signal: str, *, news: bool, now: datetime
) -> Scores:
    """Who is at risk by ``signal`` now, and since when.

    Still at risk: the earlier moment stays. Newly at risk after being scored not at risk:
    ``now`` — unless the signal itself just changed (``news`` False). At risk at a first score
    (no earlier row): where the member stands, unstamped.
    """
    at_risk = at_risk_mask(signal, scores.p_alive, scores.purchases_90d)
    ids = scores.member_id
    position = np.searchsorted(prior.member_id, ids)
    inside = position < prior.member_id.size
    known = np.zeros(ids.size, dtype=bool)
    known[inside] = prior.member_id[position[inside]] == ids[inside]
    was_at_risk = np.zeros(ids.size, dtype=bool)
    was_at_risk[known] = prior.at_risk[position[known]]
    since = np.full(ids.size, None, dtype=object)
    for index in np.flatnonzero(at_risk & was_at_risk):
        since[index] = prior.since.get(int(ids[index]))
    if news:
        since[at_risk & known & ~was_at_risk] = now
    return replace(scores, at_risk=at_risk, at_risk_since=since)


async def _read_flags(connection: AsyncConnection) -> PriorFlags:
    table = MemberValue.__table__
    chunks: list[NDArray[np.int64]] = []
    result = await connection.stream(
        select(table.c.member_id, table.c.at_risk)
        .order_by(table.c.member_id)
        .execution_options(yield_per=READ_CHUNK)
    )
    async for partition in result.partitions(READ_CHUNK):
        flat = np.fromiter(
            itertools.chain.from_iterable(partition), dtype=np.int64, count=2 * len(partition)
        )
        chunks.append(flat.reshape(-1, 2))
    rows = np.concatenate(chunks) if chunks else np.empty((0, 2), dtype=np.int64)
    since = {
        int(member_id): when
        for member_id, when in await connection.execute(
            select(table.c.member_id, table.c.at_risk_since).where(
                table.c.at_risk.is_(True), table.c.at_risk_since.is_not(None)
            )
        )
    }
    return PriorFlags(rows[:, 0], rows[:, 1].astype(bool), since)


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


async def _read_histories(connection: AsyncConnection, now: datetime) -> Histories:
    query = (
        select(
            Member.id,
            Member.purchase_count,
            EpochDays(Member.first_purchase_at),
            EpochDays(Member.last_purchase_at),
            Member.total_spent_minor,
        )
        .where(
            Member.deleted_at.is_(None),
            Member.purchase_count > 0,
            Member.first_purchase_at.is_not(None),
            Member.last_purchase_at.is_not(None),
        )
        .order_by(Member.id)
    )
    chunks: list[Array] = []
    result = await connection.stream(query.execution_options(yield_per=READ_CHUNK))
    async for partition in result.partitions(READ_CHUNK):
        # Flattened through one C-level iterator: far faster than numpy inspecting each Row.
        flat = np.fromiter(
            itertools.chain.from_iterable(partition), dtype=np.float64, count=5 * len(partition)
        )
        chunks.append(flat.reshape(-1, 5))
    rows = np.concatenate(chunks) if chunks else np.empty((0, 5))
    return histories(
        rows[:, 0].astype(np.int64),
        rows[:, 1],
        rows[:, 2],
        rows[:, 3],
        rows[:, 4],
        now.timestamp() / SECONDS_PER_DAY,
    )


async def _write(connection: AsyncConnection, scores: Scores, now: datetime) -> None:
    """Replace ``member_value`` range by range; a member deleted meanwhile is skipped.

    Rows go to the driver as plain tuples through the statement SQLAlchemy compiled for this
    database (the per-row parameter processing of an ORM-level executemany would cost more
    than everything else in the refresh); ``refreshed_at`` is converted once.
    """
    table = MemberValue.__table__
    columns = [column.name for column in table.columns]
    compiled = insert(table).compile(dialect=connection.dialect)
    order = list(compiled.positiontup or [])
    if sorted(order) != sorted(columns):
        order = []  # a driver with named parameters: take the dictionary road below
    # The value the driver itself would receive for ``now``; the dictionary road takes ``now``.
    processor = table.c.refreshed_at.type.bind_processor(connection.dialect)
    stamp = processor(now) if order and processor is not None else now

    def moment(value: datetime | None) -> Any:
        return value if value is None or not order or processor is None else processor(value)

    at_risk = (
        np.zeros(scores.member_id.size, dtype=bool) if scores.at_risk is None else scores.at_risk
    )
    since = (
        np.full(scores.member_id.size, None, dtype=object)
        if scores.at_risk_since is None
        else scores.at_risk_since
    )
    ids = scores.member_id
    low: int | None = None
    for start in range(0, max(ids.size, 1), WRITE_BATCH):
        part = slice(start, start + WRITE_BATCH)
        last = start + WRITE_BATCH >= ids.size
        values = {
            "member_id": ids[part].tolist(),
            "p_alive": np.round(scores.p_alive[part], 4).tolist(),
            "purchases_30d": np.round(scores.purchases_30d[part], 4).tolist(),
            "purchases_90d": np.round(scores.purchases_90d[part], 4).tolist(),
            "spend_per_purchase_minor": scores.spend_per_purchase[part].tolist(),
            "value_12m_minor": scores.value_12m[part].tolist(),
            "at_risk": at_risk[part].tolist(),
            "at_risk_since": [moment(when) for when in since[part]],
            "refreshed_at": itertools.repeat(stamp),
        }
        high = None if last else int(ids[min(start + WRITE_BATCH, ids.size) - 1])
        stale = delete(table)
        if low is not None:
            stale = stale.where(table.c.member_id > low)
        if high is not None:
            stale = stale.where(table.c.member_id <= high)
        await connection.execute(stale)
        member_ids: list[int] = values["member_id"]
        if member_ids:
            rows = list(zip(*(values[name] for name in (order or columns)), strict=False))
            try:
                async with connection.begin_nested():
                    await _insert(connection, table, compiled, order, columns, rows)
            except IntegrityError:
                alive = set(
                    await connection.scalars(
                        select(Member.id).where(
                            Member.id.in_(member_ids), Member.deleted_at.is_(None)
                        )
                    )
                )
                key = (order or columns).index("member_id")
                kept = [row for row in rows if row[key] in alive]
                if kept:
                    await _insert(connection, table, compiled, order, columns, kept)
        await connection.commit()
        low = high


async def _insert(
    connection: AsyncConnection,
    table: Table,
    compiled: Any,
    order: list[str],
    columns: list[str],
    rows: list[tuple[Any, ...]],
) -> None:
    if order:
        await connection.exec_driver_sql(str(compiled), rows)
    else:
        await connection.execute(
            insert(table), [dict(zip(columns, row, strict=True)) for row in rows]
        )


async def value_totals(session: AsyncSession) -> tuple[int, float, int]:
    """(members scored, expected purchases next 30 days, predicted 12-month value)."""
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(MemberValue.purchases_30d), 0.0),
                func.coalesce(func.sum(MemberValue.value_12m_minor), 0),
            )
        )
    ).one()
    return int(row[0]), float(row[1]), int(row[2])
