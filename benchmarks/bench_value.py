"""How long fitting and scoring the customer-value model takes on a big shop, beside the
segment refresh it runs with.

    python -m benchmarks.bench_value --db /tmp/carebot-bench.db

With no database at ``--db`` one is generated first (``benchmarks.datagen``: 1,000,000 members
and 10,000,000 purchases unless told otherwise). Each refresh is measured in a child process of
its own, so that its peak memory is its own and not what an earlier benchmark (or the data
generation) left behind in this one. The machine's load average is printed with the timings:
on a shared machine the same run takes longer when others are busy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks import datagen
from benchmarks.memory import peak_rss_mb

BUDGET_SECONDS = 60.0
BUDGET_RSS_MB = 1024.0


async def _measure(db: Path, what: str) -> dict[str, object]:
    """One refresh in this process: seconds, what it found, and this process's peak memory."""
    from care.core.clock import FrozenClock
    from care.core.config import CareConfig
    from care.segments.refresh import refresh_segments
    from care.value.refresh import refresh_value
    from storage.db import create_engine, create_session_factory
    from storage.models import MemberValue

    with sqlite3.connect(db) as raw:
        now = datagen.read_data_now(raw) or datetime.now(UTC).replace(microsecond=0)
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        # A database generated before the value model existed lacks its table.
        async with engine.begin() as connection:
            await connection.run_sync(MemberValue.__table__.create, checkfirst=True)
        factory = create_session_factory(engine)
        clock = FrozenClock(now + timedelta(days=1))
        if what == "value":
            stats = await refresh_value(factory, clock)
            result: dict[str, object] = {
                "seconds": stats.seconds,
                "customers": stats.customers,
                "bgnbd": str(stats.bgnbd),
                "gamma_gamma": str(stats.gamma_gamma),
                "purchases_30d": stats.expected_purchases_30d,
            }
        else:
            segments = await refresh_segments(factory, CareConfig(), clock)
            await refresh_segments(factory, CareConfig(), FrozenClock(now))
            result = {"seconds": segments.seconds, "members": segments.members}
    finally:
        await engine.dispose()
    result["peak_rss_mb"] = peak_rss_mb()  # this process's own (VmHWM), see benchmarks/memory.py
    return result


def _in_child(db: Path, what: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_value", "--db", str(db), "--child", what],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def report(value: dict[str, object], segments: dict[str, object], load: str) -> str:
    seconds = float(value["seconds"])  # type: ignore[arg-type]
    rss = float(value["peak_rss_mb"])  # type: ignore[arg-type]
    verdict = "OK" if seconds <= BUDGET_SECONDS and rss <= BUDGET_RSS_MB else "OVER BUDGET"
    return "\n".join(
        [
            f"Customer value (BG/NBD + Gamma-Gamma) over {value['customers']:,} members "
            f"with purchases; machine load {load}",
            f"  read, fit, score, write        : {seconds:8.1f} s   "
            f"budget {BUDGET_SECONDS:.0f} s  [{verdict}]",
            f"  its process's peak memory      : {rss:8.1f} MB  budget {BUDGET_RSS_MB:.0f} MB",
            f"  segment refresh, same data     : {float(segments['seconds']):8.1f} s   "  # type: ignore[arg-type]
            f"({segments['members']:,} members; peak {float(segments['peak_rss_mb']):.0f} MB)",  # type: ignore[arg-type]
            f"  fitted BG/NBD (days)           : {value['bgnbd']}",
            f"  fitted Gamma-Gamma (minor)     : {value['gamma_gamma']}",
            f"  expected purchases, next 30 d  : {float(value['purchases_30d']):,.0f}",  # type: ignore[arg-type]
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_value")
    parser.add_argument("--db", type=Path, default=Path("/tmp/carebot-bench.db"))
    parser.add_argument("--members", type=int, default=1_000_000, help="when generating")
    parser.add_argument("--purchases", type=int, default=10_000_000, help="when generating")
    parser.add_argument("--child", choices=["value", "segments"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point (``benchmarks.run`` calls it): 0 when the value refresh is within budget."""
    args = parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(_measure(args.db, args.child))))
        return 0
    if not datagen.current(args.db):
        now = datetime.now(UTC).replace(microsecond=0)
        print(f"No data at {args.db} for this schema: generating it first (benchmarks.datagen)")
        made = datagen.generate(args.db, members=args.members, purchases=args.purchases, now=now)
        print(f"Generated in {made.seconds:.1f} s; first segment pass: ", end="", flush=True)
        print(asyncio.run(datagen.refresh(args.db, now)))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    value = _in_child(args.db, "value")
    segments = _in_child(args.db, "segments")
    print(report(value, segments, f"{load} (1/5/15 min, {os.cpu_count()} CPUs)"))
    seconds = float(value["seconds"])  # type: ignore[arg-type]
    rss = float(value["peak_rss_mb"])  # type: ignore[arg-type]
    return 0 if seconds <= BUDGET_SECONDS and rss <= BUDGET_RSS_MB else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
