"""How long the segment refresh takes on a big shop, beside the naive way it replaces.

    python -m benchmarks.bench_segments --db /tmp/carebot-bench.db

With no database at ``--db`` one is generated first (``benchmarks.datagen``; 1,000,000 members
and 10,000,000 purchases unless told otherwise, about two minutes) and given its first segment
pass, so that what is measured is the daily run: the refresh the day after the data's "now".

The naive alternative — load each member, query their purchases, apply the stage rules in
Python, write the row back — is measured on a sample of members inside a transaction that is
rolled back, and extrapolated linearly to the whole membership; the printout says so.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchmarks import datagen
from benchmarks.load import load_text
from benchmarks.memory import peak_rss_mb
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.loyalty.tiers import tier_for_spend
from care.segments.refresh import SPEND_WINDOW, refresh_segments
from care.segments.rules import (
    StageFacts,
    churn_risk,
    days_since,
    lifecycle_stage,
    quintile_score,
    usual_gap_days,
    value_tier,
)
from storage.db import create_engine, create_session_factory
from storage.models import Member, Purchase, Tier

BUDGET_SECONDS = 30.0
BUDGET_RSS_MB = 500.0


@dataclass(frozen=True, slots=True)
class SegmentBench:
    members: int
    refresh_seconds: float
    refresh_changed: int
    hourly_seconds: float
    hourly_changed: int
    refresh_rss_growth_mb: float
    naive_sample: int
    naive_sample_seconds: float

    @property
    def naive_extrapolated_seconds(self) -> float:
        return self.naive_sample_seconds * self.members / max(self.naive_sample, 1)


def _peak_rss_mb() -> float:
    return peak_rss_mb()


async def naive_refresh_sample(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    now: datetime,
    sample: int,
    shop_gap: float,
) -> float:
    """The Python-loop way, on the first ``sample`` members; rolled back. Returns seconds."""
    started = time.perf_counter()
    since = now - SPEND_WINDOW
    async with session_factory() as session:
        tiers = list(await session.scalars(select(Tier).order_by(Tier.rank)))
        members = list(
            await session.scalars(
                select(Member).where(Member.deleted_at.is_(None)).order_by(Member.id).limit(sample)
            )
        )
        keys: dict[int, tuple[datetime, int, int]] = {}
        for member in members:
            count, spend = (
                await session.execute(
                    select(func.count(), func.coalesce(func.sum(Purchase.amount_minor), 0)).where(
                        Purchase.member_id == member.id, Purchase.purchased_at >= since
                    )
                )
            ).one()
            member.spend_12m_minor = int(spend)
            member.tier_code = tier_for_spend(tiers, int(spend)).code
            stage = lifecycle_stage(StageFacts.of(member), now, config, shop_gap)
            if stage != member.lifecycle_stage:
                member.lifecycle_stage = stage
                member.stage_changed_at = now
            if member.purchase_count and member.last_purchase_at is not None:
                usual = usual_gap_days(
                    member.purchase_count, member.avg_gap_days, config, shop_gap
                )
                member.churn_risk = churn_risk(
                    days_since(member.last_purchase_at, now), usual, config
                )
                keys[member.id] = (member.last_purchase_at, int(count), int(spend))
        by_id = {member.id: member for member in members}
        scores: dict[int, list[int]] = {member_id: [] for member_id in keys}
        for axis in range(3):
            ordered = sorted(keys, key=lambda member_id: keys[member_id][axis])
            rank = 0
            previous = None
            for position, member_id in enumerate(ordered, start=1):
                if keys[member_id][axis] != previous:
                    rank, previous = position, keys[member_id][axis]
                scores[member_id].append(quintile_score(rank, len(ordered)))
        for member_id, (r, f, m) in scores.items():
            member = by_id[member_id]
            member.rfm_r, member.rfm_f, member.rfm_m = r, f, m
            member.value_tier = value_tier(r + f + m)
        await session.flush()
        await session.rollback()
    return time.perf_counter() - started


async def run(db: Path, sample: int, config: CareConfig | None = None) -> SegmentBench:
    """Time the daily refresh, the hourly one after it, and the naive loop over a sample.

    The database is shared with the rule-evaluation benchmark, which freezes its clock at the
    data's "now"; a last refresh at that moment puts the segments back where it expects them.
    """
    config = config or CareConfig()
    with sqlite3.connect(db) as raw:
        now = datagen.read_data_now(raw) or datetime.now(UTC).replace(microsecond=0)
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    session_factory = create_session_factory(engine)
    try:
        rss_before = _peak_rss_mb()
        daily = await refresh_segments(
            session_factory, config, FrozenClock(now + timedelta(days=1))
        )
        hourly = await refresh_segments(
            session_factory, config, FrozenClock(now + timedelta(days=1, hours=1))
        )
        rss_growth = max(0.0, _peak_rss_mb() - rss_before)
        naive_seconds = await naive_refresh_sample(
            session_factory, config, now + timedelta(days=1), sample, daily.shop_gap_days
        )
        await refresh_segments(session_factory, config, FrozenClock(now))
    finally:
        await engine.dispose()
    return SegmentBench(
        members=daily.members,
        refresh_seconds=daily.seconds,
        refresh_changed=daily.members_changed,
        hourly_seconds=hourly.seconds,
        hourly_changed=hourly.members_changed,
        refresh_rss_growth_mb=rss_growth,
        naive_sample=min(sample, daily.members),
        naive_sample_seconds=naive_seconds,
    )


def report(result: SegmentBench, load: str = "") -> str:
    """The figures; ``load`` is the machine's load when the measured refresh ended."""
    naive = result.naive_extrapolated_seconds
    slowest = max(result.refresh_seconds, result.hourly_seconds)
    verdict = "OK" if slowest <= BUDGET_SECONDS else "OVER BUDGET"
    return "\n".join(
        [
            f"Segment refresh over {result.members:,} members (RFM, value tiers, stages, "
            "churn risk, 12-month spend and tiers)",
            f"  set-based SQL, the day after   : {result.refresh_seconds:8.1f} s   "
            f"budget {BUDGET_SECONDS:.0f} s  [{verdict}]  "
            f"({result.refresh_changed:,} rows changed)  {load}",
            f"  set-based SQL, an hour later   : {result.hourly_seconds:8.1f} s   "
            f"(the scheduler's hourly run; {result.hourly_changed:,} rows changed)",
            f"  peak memory growth             : {result.refresh_rss_growth_mb:8.1f} MB  "
            f"budget {BUDGET_RSS_MB:.0f} MB  {load}",
            f"  naive Python loop, measured    : {result.naive_sample_seconds:8.1f} s   "
            f"on {result.naive_sample:,} members",
            f"  naive Python loop, EXTRAPOLATED: {naive:8.1f} s   "
            f"for {result.members:,} members (×{naive / max(result.refresh_seconds, 1e-9):,.0f})",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_segments")
    parser.add_argument("--db", type=Path, default=Path("/tmp/carebot-bench.db"))
    parser.add_argument("--members", type=int, default=1_000_000, help="when generating")
    parser.add_argument("--purchases", type=int, default=10_000_000, help="when generating")
    parser.add_argument("--sample", type=int, default=20_000, help="members for the naive loop")
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    """Entry point (``benchmarks.run`` awaits it): 0 when the refresh is within budget."""
    args = parse_args(argv)
    if not datagen.current(args.db):
        now = datetime.now(UTC).replace(microsecond=0)
        print(f"No data at {args.db} for this schema: generating it first (benchmarks.datagen)")
        made = datagen.generate(args.db, members=args.members, purchases=args.purchases, now=now)
        print(f"Generated in {made.seconds:.1f} s; first segment pass: ", end="", flush=True)
        print(await datagen.refresh(args.db, now))
    result = await run(args.db, args.sample)
    print(report(result, load_text()))
    slowest = max(result.refresh_seconds, result.hourly_seconds)
    within = slowest <= BUDGET_SECONDS and result.refresh_rss_growth_mb <= BUDGET_RSS_MB
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
