"""One full care-rule evaluation pass on a big shop, beside the naive way it replaces.

    python -m benchmarks.bench_evaluation --db /tmp/carebot-bench.db

With no database at ``--db`` one is generated first (``benchmarks.datagen``: 1,000,000 members
and 10,000,000 purchases unless told otherwise). The pass runs on a copy of it, so the shared
database stays as generated, at the day after the data's "now" (after that day's segment
refresh, so at-risk and lapsed members have fresh stage changes), exactly as the scheduler
would run it: every enabled rule, every batch committed, coupons issued, surveys created,
messages queued. It runs in a child process of its own, and the peak RSS printed is that child's
own high-water mark (``VmHWM``, see ``benchmarks.memory``): the interpreter, its imports and the
evaluation, nothing of the data generation or of the segment refresh before it (each of those runs
in a process of its own too).

The naive alternative — loop over every member in Python, load the member's purchases and
touches, decide each rule in Python — is measured on a sample of members and extrapolated
linearly to the whole membership; the printout says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from benchmarks import datagen
from benchmarks.load import load_text
from benchmarks.memory import peak_rss_mb
from care.automation.engine import coverage_name, evaluate
from care.automation.rules import scheduled_rules
from care.automation.triggers.anniversary import add_years
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.segments.refresh import refresh_segments
from storage.db import create_engine, create_session_factory
from storage.models import Base, CareTouch, JobState, Member, Purchase

BUDGET_SECONDS = 30.0
BUDGET_RSS_MB = 500.0
DEFAULT_DB = Path("/tmp/carebot-bench.db")
DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class EvaluationBench:
    members: int
    purchases: int
    seconds: float
    peak_rss_mb: float
    decided: dict[str, int]
    sent: int
    held_out: int
    naive_sample: int
    naive_sample_seconds: float

    @property
    def naive_extrapolated_seconds(self) -> float:
        return self.naive_sample_seconds * self.members / max(self.naive_sample, 1)


def _data_now(db: Path) -> datetime:
    with sqlite3.connect(db) as raw:
        return datagen.read_data_now(raw) or datetime.now(UTC).replace(microsecond=0)


def _counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as raw:
        members = raw.execute("SELECT max(id) FROM members").fetchone()[0] or 0
        purchases = raw.execute("SELECT max(id) FROM purchases").fetchone()[0] or 0
    return int(members), int(purchases)


# ---------------------------------------------------------------------- child process


async def _child(db: Path, at: datetime, step: str) -> dict[str, Any]:
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    factory = create_session_factory(engine)
    config = CareConfig()
    clock = FrozenClock(at)
    try:
        if step == "prepare":
            # A database generated before the newest indexes gets them, as a migration would.
            async with engine.begin() as connection:
                await connection.run_sync(_create_missing_indexes)
            stats = await refresh_segments(factory, config, clock)
            # The scheduler ran until the data's day ended: every rule is covered up to then.
            async with factory() as session:
                for rule in scheduled_rules(config):
                    session.add(JobState(name=coverage_name(rule), covered_until=at - DAY))
                await session.commit()
            return {"stages": stats.stages, "seconds": stats.seconds}
        started = time.perf_counter()
        outcomes = await evaluate(factory, config, clock)
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    errors = {o.rule: o.error for o in outcomes if o.error}
    return {
        "seconds": seconds,
        "peak_rss_mb": peak_rss_mb(),
        "decided": {o.rule: o.decided for o in outcomes},
        "sent": sum(o.sent for o in outcomes),
        "held_out": sum(o.held_out for o in outcomes),
        "errors": errors,
    }


def _create_missing_indexes(connection: Any) -> None:
    for table in Base.metadata.sorted_tables:
        table.create(connection, checkfirst=True)
        for index in table.indexes:
            index.create(connection, checkfirst=True)


def _in_child(db: Path, at: datetime, step: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_evaluation", "--child", step, "--db", str(db),
         "--at", at.isoformat()],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------------- the naive way


async def naive_sample(
    session_factory: async_sessionmaker[AsyncSession], config: CareConfig, now: datetime, n: int
) -> float:
    """The Python-loop way over the first ``n`` members: load each member, their purchases and
    their touches, and decide every rule in Python. Read-only. Returns seconds."""
    rules = scheduled_rules(config)
    started = time.perf_counter()
    async with session_factory() as session:
        members = list(await session.scalars(select(Member).order_by(Member.id).limit(n)))
        for member in members:
            purchases = list(
                await session.scalars(select(Purchase).where(Purchase.member_id == member.id))
            )
            touched = {
                (rule, occasion)
                for rule, occasion in await session.execute(
                    select(CareTouch.rule, CareTouch.occasion).where(
                        CareTouch.member_id == member.id
                    )
                )
            }
            for rule in rules:
                _naive_due(rule.name, member, purchases, touched, now)
    return time.perf_counter() - started


def _naive_due(
    rule: str,
    member: Member,
    purchases: list[Purchase],
    touched: set[tuple[str, str]],
    now: datetime,
) -> bool:
    joined = member.registered_at or member.created_at
    if rule == "welcome":
        return now - joined < timedelta(days=3) and (rule, "joined") not in touched
    if rule == "welcome_followup":
        return timedelta(days=3) <= now - joined < timedelta(days=6)
    if rule == "purchase_survey":
        return any(
            timedelta(hours=3) <= now - p.purchased_at < timedelta(days=2, hours=3)
            and (rule, f"purchase:{p.id}") not in touched
            for p in purchases
        )
    if rule == "birthday":
        return member.birthday_md == now.month * 100 + now.day
    if rule == "anniversary":
        return any(
            timedelta(0) <= now - add_years(joined, k) < timedelta(days=2) for k in range(1, 30)
        )
    if rule == "tier_nudge":
        spend = sum(p.amount_minor for p in purchases if now - p.purchased_at < timedelta(365))
        return 80_000 <= spend < 100_000
    stage_changed = member.stage_changed_at
    if rule in ("winback", "last_chance") and stage_changed is not None:
        return now - stage_changed < timedelta(days=7)
    return False


async def _naive(db: Path, at: datetime, sample: int) -> float:
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        return await naive_sample(create_session_factory(engine), CareConfig(), at, sample)
    finally:
        await engine.dispose()


# ---------------------------------------------------------------------- the run


def run(db: Path, sample: int) -> EvaluationBench:
    now = _data_now(db)
    at = now + DAY  # the day after the data's day: one pass catching up a whole day
    work = db.with_name(db.stem + "-evaluation.db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(db) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(db, work)
    try:
        print("Preparing: that day's segment refresh … ", end="", flush=True)
        prepared = _in_child(work, at, "prepare")
        print(f"{prepared['seconds']:.1f} s; stages {prepared['stages']}", flush=True)
        print("Evaluating every rule once … ", end="", flush=True)
        result = _in_child(work, at, "evaluate")
        print(f"{result['seconds']:.1f} s", flush=True)
        if result["errors"]:
            print(f"rule errors: {result['errors']}")
        print(f"Naive loop on {sample:,} members … ", end="", flush=True)
        naive_seconds = asyncio.run(_naive(work, at, sample))
        print(f"{naive_seconds:.1f} s", flush=True)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)
    members, purchases = _counts(db)
    return EvaluationBench(
        members=members,
        purchases=purchases,
        seconds=result["seconds"],
        peak_rss_mb=result["peak_rss_mb"],
        decided=result["decided"],
        sent=result["sent"],
        held_out=result["held_out"],
        naive_sample=min(sample, members),
        naive_sample_seconds=naive_seconds,
    )


def report(result: EvaluationBench, load: str = "") -> str:
    """The figures; ``load`` is the machine's load when the measured pass ended."""
    naive = result.naive_extrapolated_seconds
    time_ok = "OK" if result.seconds <= BUDGET_SECONDS else "OVER BUDGET"
    rss_ok = "OK" if result.peak_rss_mb <= BUDGET_RSS_MB else "OVER BUDGET"
    decided = ", ".join(f"{rule} {n:,}" for rule, n in result.decided.items() if n)
    return "\n".join(
        [
            f"Care rule evaluation over {result.members:,} members and "
            f"{result.purchases:,} purchases (SQLite), all {len(result.decided)} rules",
            f"  decided: {result.sent + result.held_out:,} ({result.sent:,} messages queued, "
            f"{result.held_out:,} held out) — {decided or 'nobody due'}",
            f"  set-based pass (care.automation.engine)   : {result.seconds:8.1f} s   "
            f"target < {BUDGET_SECONDS:.0f} s   [{time_ok}]  {load}",
            f"  peak RSS of the pass           : {result.peak_rss_mb:8.1f} MB  "
            f"target < {BUDGET_RSS_MB:.0f} MB  [{rss_ok}]  {load}",
            "    (VmHWM of the pass's own process: interpreter, imports and the pass; the data "
            "generation and the segment refresh before it ran in other processes)",
            f"  naive Python loop, measured    : {result.naive_sample_seconds:8.1f} s   "
            f"on {result.naive_sample:,} members (each member's purchases loaded)",
            f"  naive Python loop, EXTRAPOLATED: {naive:8.1f} s   "
            f"for {result.members:,} members (×{naive / max(result.seconds, 1e-9):,.0f} slower)",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_evaluation")
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--members", type=int, default=1_000_000, help="when generating")
    parser.add_argument("--purchases", type=int, default=10_000_000, help="when generating")
    parser.add_argument("--sample", type=int, default=5_000, help="members for the naive loop")
    parser.add_argument("--child", choices=("prepare", "evaluate"), help=argparse.SUPPRESS)
    parser.add_argument("--at", type=datetime.fromisoformat, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point (``benchmarks.run`` calls it): 0 when the pass is within both targets."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_child(args.db, args.at, args.child))))
        return 0
    if not datagen.current(args.db):
        print(
            f"No data at {args.db} for this schema: generating it first (benchmarks.datagen)",
            flush=True,
        )
        subprocess.run(
            [sys.executable, "-m", "benchmarks.datagen", "--members", str(args.members),
             "--purchases", str(args.purchases), "--db", str(args.db)],
            check=True,
        )  # fmt: skip
    result = run(args.db, args.sample)
    print(report(result, load_text()))
    within = result.seconds <= BUDGET_SECONDS and result.peak_rss_mb <= BUDGET_RSS_MB
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
