"""How long `carebot import members` takes for a big customer list, and how fast
`carebot import purchases` books a till history.

    python -m benchmarks.bench_import [--members 100000] [--purchases 50000]
                                      [--line-by-line 2000]

Writes a customer list (phone, name, birthday, language, points, joined, marketing consent with
date and source) to a temporary directory, migrates a fresh SQLite database beside it and
imports the list through ``care.imports.members.import_members``, as the CLI does. The target:
100,000 members within 60 s. Then a till export of ``--purchases`` receipts for the first
10,000 of them goes through ``care.imports.purchases.import_purchases`` (batched, set-based),
beside the first ``--line-by-line`` lines of the same file booked the way the import did before
(one ``record_purchase`` a line, a commit every 200) into a copy of the database. The machine's
load average is printed beside the figures: on a shared machine the same run takes longer when
others are busy. Both imports run in a child process of its own, so the peak memory printed is
the import's (that process's ``VmHWM``: the interpreter, its imports, writing the files and
importing them), not what an earlier benchmark in the same ``make bench`` left as the parent's
high-water mark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load import load_text
from benchmarks.memory import peak_rss_mb

BUDGET_SECONDS = 60.0


def write_members_csv(path: Path, members: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    lines = [
        "phone,name,birthday,language,points,joined,marketing_consent,consent_date,consent_source"
    ]
    for number in range(members):
        born = f"{rng.randint(1950, 2005)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        joined = f"{rng.randint(2015, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        consent = rng.random() < 0.6
        lines.append(
            f"+86139{number:08d},Customer {number},{born},{rng.choice(['zh', 'zh', 'en'])},"
            f"{rng.choice([0, 0, 120, 800, 2500])},{joined},{'yes' if consent else 'no'},"
            f"{joined},paper form"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_purchases_csv(path: Path, purchases: int, customers: int, seed: int = 11) -> list[str]:
    """Receipts over the last two years for the first ``customers`` phones of the list."""
    rng = random.Random(seed)
    lines = ["receipt_id,member,amount,purchased_at"]
    for number in range(purchases):
        customer = rng.randrange(customers)
        day = f"{rng.choice([2024, 2025])}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        amount = f"{rng.randint(5, 800)}.{rng.randint(0, 99):02d}"
        lines.append(
            f"P{number},+86139{customer:08d},{amount},{day}T{rng.randint(9, 20):02d}:15:00"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lines[1:]


async def _purchases(directory: Path, purchases: int, line_by_line: int) -> dict[str, float]:
    """Seconds for the batched import, and for the old line-by-line booking of a prefix."""
    from care.core.clock import Clock
    from care.core.config import CareConfig
    from care.imports.purchases import import_purchases
    from storage.db import create_engine, create_session_factory

    customers = 10_000
    csv_path = directory / "purchases.csv"
    rows = write_purchases_csv(csv_path, purchases, customers)
    shutil.copy(directory / "import.db", directory / "line_by_line.db")
    result: dict[str, float] = {}
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'import.db'}")
    try:
        started = time.perf_counter()
        report = await import_purchases(
            create_session_factory(engine), CareConfig(), Clock(), csv_path
        )
        result["batched"] = time.perf_counter() - started
        result["batched_lines"] = float(report.imported)
    finally:
        await engine.dispose()
    if line_by_line:
        engine = create_engine(f"sqlite+aiosqlite:///{directory / 'line_by_line.db'}")
        try:
            result["line_by_line"] = await _line_by_line(
                create_session_factory(engine), rows[:line_by_line]
            )
            result["line_by_line_lines"] = float(line_by_line)
        finally:
            await engine.dispose()
    return result


async def _line_by_line(factory: object, rows: list[str]) -> float:
    """The import as it was before it was batched: find the member, ``record_purchase``, and
    commit every 200 lines."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from care.core.clock import Clock
    from care.core.config import CareConfig
    from care.loyalty.purchases import record_purchase
    from care.loyalty.till import parse_till_amount, till_member

    assert isinstance(factory, async_sessionmaker)
    config, clock = CareConfig(), Clock()
    zone = ZoneInfo(config.default_timezone)
    started = time.perf_counter()
    for start in range(0, len(rows), 200):
        session: AsyncSession
        async with factory() as session:
            for row in rows[start : start + 200]:
                receipt, who, amount, when = row.split(",")
                member = await till_member(session, who)
                await record_purchase(
                    session, config, clock, member_id=member.id,
                    amount_minor=parse_till_amount(amount, config), receipt_id=receipt,
                    purchased_at=datetime.fromisoformat(when).replace(tzinfo=zone),
                    source="import",
                )  # fmt: skip
            await session.commit()
    return time.perf_counter() - started


async def _run(directory: Path, members: int) -> tuple[float, int, int]:
    from care.core.clock import Clock
    from care.core.config import CareConfig
    from care.imports.members import import_members
    from storage import migrate
    from storage.db import create_engine, create_session_factory

    csv_path = directory / "members.csv"
    write_members_csv(csv_path, members)
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'import.db'}")
    try:
        await migrate.upgrade(engine, "head")
        started = time.perf_counter()
        report = await import_members(
            create_session_factory(engine), CareConfig(), Clock(), csv_path
        )
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    return seconds, report.imported, len(report.rejected)


def _child(members: int, purchases: int, line_by_line: int) -> dict[str, object]:
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="carebot-import-") as directory:
        seconds, imported, rejected = asyncio.run(_run(Path(directory), members))
        if purchases and members >= 10_000:
            timings = asyncio.run(
                _purchases(Path(directory), purchases, min(line_by_line, purchases))
            )
    return {
        "seconds": seconds,
        "imported": imported,
        "rejected": rejected,
        "timings": timings,
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point (``benchmarks.run`` calls it): 0 when the import is within budget."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_import")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--purchases", type=int, default=50_000)
    parser.add_argument("--line-by-line", type=int, default=2_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.members, args.purchases, args.line_by_line)))
        return 0
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_import",
            "--child",
            "--members",
            str(args.members),
            "--purchases",
            str(args.purchases),
            "--line-by-line",
            str(args.line_by_line),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    seconds, imported, rejected = result["seconds"], result["imported"], result["rejected"]
    timings: dict[str, float] = result["timings"]
    verdict = "OK" if seconds <= BUDGET_SECONDS and rejected == 0 else "OVER BUDGET"
    print(
        f"carebot import members: {imported:,} members in {seconds:.1f} s "
        f"({imported / seconds:,.0f}/s; budget {BUDGET_SECONDS:.0f} s) [{verdict}]; "
        f"{rejected} rejected; the import process's peak memory {result['peak_rss_mb']:.0f} MB "
        f"{load_text()}"
    )
    if timings:
        batched = timings["batched_lines"] / timings["batched"]
        line = (
            f"carebot import purchases: {timings['batched_lines']:,.0f} receipts in "
            f"{timings['batched']:.1f} s ({batched:,.0f}/s, batched)"
        )
        if "line_by_line" in timings:
            naive = timings["line_by_line_lines"] / timings["line_by_line"]
            line += (
                f"; line by line as before: {timings['line_by_line_lines']:,.0f} in "
                f"{timings['line_by_line']:.1f} s ({naive:,.0f}/s), {batched / naive:,.0f}× slower"
            )
        print(line)
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
