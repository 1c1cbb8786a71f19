"""How long `carebot import members` takes for a big customer list.

    python -m benchmarks.bench_import [--members 100000]

Writes a customer list (phone, name, birthday, language, points, joined, marketing consent with
date and source) to a temporary directory, migrates a fresh SQLite database beside it and
imports the list through ``care.imports.members.import_members``, as the CLI does. The target:
100,000 members within 60 s. The import runs in a child process of its own, so the peak memory
printed is the import's (that process's ``VmHWM``: the interpreter, its imports, writing the list
and importing it), not what an earlier benchmark in the same ``make bench`` left as the parent's
high-water mark. The machine's load average is printed beside the figure: on a shared machine
the same run takes longer when others are busy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
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


def _child(members: int) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="carebot-import-") as directory:
        seconds, imported, rejected = asyncio.run(_run(Path(directory), members))
    return {
        "seconds": seconds,
        "imported": imported,
        "rejected": rejected,
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point (``benchmarks.run`` calls it): 0 when the import is within budget."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_import")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.members)))
        return 0
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench_import",
            "--child",
            "--members",
            str(args.members),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    seconds, imported, rejected = result["seconds"], result["imported"], result["rejected"]
    verdict = "OK" if seconds <= BUDGET_SECONDS and rejected == 0 else "OVER BUDGET"
    print(
        f"carebot import members: {imported:,} members in {seconds:.1f} s "
        f"({imported / seconds:,.0f}/s; budget {BUDGET_SECONDS:.0f} s) [{verdict}]; "
        f"{rejected} rejected; the import process's peak memory {result['peak_rss_mb']:.0f} MB "
        f"{load_text()}"
    )
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
